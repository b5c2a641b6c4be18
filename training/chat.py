"""Re-export: chat-template rendering lives in :mod:`swarmgym.chat.render`."""

from ..chat.render import ChatRenderer, message_to_template, tools_to_template

__all__ = ["ChatRenderer", "message_to_template", "tools_to_template"]
