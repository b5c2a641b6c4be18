"""Re-export: token-in-token-out lives in :mod:`swarmgym.chat.tokens` (shared by policies and training)."""

from ..chat.tokens import STATE_KEY, TokenizedConversation, TokenState

__all__ = ["TokenizedConversation", "TokenState", "STATE_KEY"]
