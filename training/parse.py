"""Re-export: completion parsing lives in :mod:`swarmgym.chat.parse`."""

from ..chat.parse import parse_hermes, strip_stop_text

__all__ = ["parse_hermes", "strip_stop_text"]
