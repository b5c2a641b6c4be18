"""Exceptions raised by swarmgym.

Every error a user can cause derives from :class:`SwarmgymError`; each boundary has its own subclass so
callers can catch exactly what they handle::

    SwarmgymError
    ├── ConfigError          bad arguments or configuration (wrong type, missing extra, bad env kwargs)
    ├── RegistryError        unknown or duplicate env id, broken entry point
    ├── PolicyError          a model server or local model failed
    │   ├── PolicyConnectionError   server unreachable / connection dropped after retries
    │   ├── PolicyHTTPError         non-retryable or exhausted HTTP status (carries ``status``)
    │   └── PolicyTimeoutError      a call exceeded its deadline
    ├── ToolError            raised *inside* tools; the loop turns it into an error observation
    ├── SandboxError         a sandbox could not start, answer, reset or be verified
    ├── JudgeError           a judge failed; by default reported as a facet, reward 0
    ├── TokenDriftError      token-exact data could not be kept (template not prefix-preserving)
    ├── StoreError           the trajectory store is unreadable or corrupt
    └── RolloutError         a run was stopped (error-rate breaker, cancellation)
"""

from __future__ import annotations

__all__ = [
    "SwarmgymError",
    "ConfigError",
    "RegistryError",
    "PolicyError",
    "PolicyConnectionError",
    "PolicyHTTPError",
    "PolicyTimeoutError",
    "ToolError",
    "SandboxError",
    "JudgeError",
    "TokenDriftError",
    "StoreError",
    "RolloutError",
]


class SwarmgymError(Exception):
    """Root of every swarmgym exception."""


class ConfigError(SwarmgymError, ValueError):
    """Invalid configuration or arguments; the message says what to change."""


class RegistryError(SwarmgymError, KeyError):
    """Unknown env id, duplicate registration or a broken entry point."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class PolicyError(SwarmgymError):
    """A policy (model server or local model) failed to produce a completion."""


class PolicyConnectionError(PolicyError):
    """The model server could not be reached or dropped the connection (after retries)."""


class PolicyHTTPError(PolicyError):
    """The model server answered with an error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class PolicyTimeoutError(PolicyError, TimeoutError):
    """A model call exceeded its deadline."""


class ToolError(SwarmgymError):
    """Raised by a tool to report a problem to the model as an error observation."""


class SandboxError(SwarmgymError):
    """A sandbox failed to start, answer, reset or pass verification."""


class JudgeError(SwarmgymError):
    """A judge could not score a trajectory."""


class TokenDriftError(SwarmgymError):
    """Token-exact training data could not be kept for a turn (never train on silently wrong ids)."""


class StoreError(SwarmgymError):
    """The trajectory store is unreadable or corrupt."""


class RolloutError(SwarmgymError):
    """A rollout run was stopped (error-rate breaker, cancellation)."""
