"""Wire types: the only place swarmgym's data model is defined.

Everything that crosses a boundary (policy ↔ loop ↔ tools ↔ judge ↔ store ↔ trainer) is one of these
pydantic v2 models. They follow the OpenAI chat format so any OpenAI-compatible server plugs in, and they
round-trip through JSON exactly (``Model.model_validate_json(m.model_dump_json()) == m``).

Wire values (messages, tool calls, completions, tasks, judge results) are frozen: a trajectory is a record of
what happened, and a shared message must never change under a second reader. ``Trajectory`` itself is
mutable because the loop builds it step by step.
"""

from __future__ import annotations

import itertools
import os
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "coerce_action",
    "truncate_middle",
    "Role",
    "TextPart",
    "ImagePart",
    "ContentPart",
    "ToolCall",
    "Message",
    "ToolSpec",
    "ToolResult",
    "SamplingParams",
    "Usage",
    "Completion",
    "Task",
    "JudgeResult",
    "TrajectoryStatus",
    "JudgeOutcome",
    "Trajectory",
    "new_id",
    "text_of",
]

Role = Literal["system", "user", "assistant", "tool"]
TrajectoryStatus = Literal["ok", "truncated", "error", "cancelled"]
JudgeOutcome = Literal["ok", "error", "timeout"]


# Ids need uniqueness, not secrecy: a per-process random 64-bit base XOR a counter. Within a process ids never
# repeat; across processes a clash is as unlikely as between random 64-bit ids. Cheaper than os.urandom (a
# system call per id) and than a Mersenne Twister draw (its 2.5 KB state is a cache miss on a busy loop).
# Forked children draw a new base, or they would repeat the parent's ids.
_id_base = int.from_bytes(os.urandom(8), "big")
_id_count = itertools.count()


def _reseed_ids() -> None:
    global _id_base
    _id_base = int.from_bytes(os.urandom(8), "big")


os.register_at_fork(after_in_child=_reseed_ids)


def new_id(prefix: str = "") -> str:
    """A short unique id (16 hex chars) with an optional prefix."""
    return f"{prefix}{_id_base ^ next(_id_count):016x}"


_osa = object.__setattr__


def _trusted(cls: type[BaseModel], values: dict[str, Any], fields_set: set[str]) -> Any:
    """An instance of ``cls`` holding ``values`` (which must give *every* field), not validated.

    Only for values the library itself just built with the right types, on per-episode hot paths where
    pydantic's validation (~1-2 µs a model) is a measurable share of an episode's CPU. Tests check that each
    call site's result equals the validated model, so a new field cannot be forgotten silently.
    """
    new = object.__new__(cls)
    _osa(new, "__dict__", values)
    _osa(new, "__pydantic_fields_set__", fields_set)
    _osa(new, "__pydantic_extra__", None)
    _osa(new, "__pydantic_private__", None)
    return new


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def _replace(self, **changes: Any) -> Any:
        """A copy with some fields replaced, not revalidated: for the library's own well-typed values on hot
        paths (``model_copy(update=...)`` costs ~1.4 µs, this ~0.9 µs). Wire models are frozen, so the
        copy may share every unchanged value with the original."""
        d = self.__dict__.copy()
        d.update(changes)
        return _trusted(type(self), d, self.__pydantic_fields_set__ | changes.keys())


class TextPart(_Wire):
    """A text part of a multimodal message."""

    type: Literal["text"] = "text"
    text: str


class ImagePart(_Wire):
    """An image part: ``image_url`` is ``{"url": "https://…" | "data:image/png;base64,…", "detail"?: …}``."""

    type: Literal["image_url"] = "image_url"
    image_url: dict[str, str]

    @field_validator("image_url")
    @classmethod
    def _has_url(cls, v: dict[str, str]) -> dict[str, str]:
        if "url" not in v:
            raise ValueError("image_url needs a 'url' key (an http(s) URL or a data: URI)")
        return v


# Discriminated on ``type`` so a bad part gets one precise error ("image_url needs a 'url' key") instead of
# one error per union member.
ContentPart = Annotated[Union[TextPart, ImagePart], Field(discriminator="type")]


class ToolCall(_Wire):
    """A tool call requested by the model.

    ``arguments`` is the parsed JSON object when the model produced valid JSON, otherwise the raw string
    exactly as sampled; the loop turns a raw string into an error observation for the model.
    """

    id: str
    """Call id, echoed back in the tool message's ``tool_call_id``."""
    name: str
    """Name of the tool the model wants to call."""
    arguments: Union[dict[str, Any], str] = Field(default_factory=dict)
    """Parsed JSON arguments, or the raw string when they did not parse to a JSON object."""

    @property
    def is_malformed(self) -> bool:
        """True when the model's arguments were not a JSON object."""
        return isinstance(self.arguments, str)

    def to_openai(self) -> dict[str, Any]:
        """This call in the OpenAI ``tool_calls`` wire shape (arguments as a JSON string)."""
        import json

        args = self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": args}}

    @classmethod
    def from_openai(cls, raw: dict[str, Any]) -> ToolCall:
        """Parse one OpenAI ``tool_calls`` entry; malformed JSON arguments are kept as the raw string.

        Raises:
            ValueError: the entry or its ``function`` is not a JSON object.
        """
        import json

        if not isinstance(raw, dict):
            raise ValueError(f"a tool call must be a JSON object, got {type(raw).__name__}")
        fn = raw.get("function") or {}
        if not isinstance(fn, dict):
            raise ValueError(f"a tool call's 'function' must be a JSON object, got {type(fn).__name__}")
        args_raw = fn.get("arguments", "")
        args: dict[str, Any] | str
        if isinstance(args_raw, dict):
            args = args_raw
        else:
            try:
                parsed = json.loads(args_raw) if args_raw else {}
                args = parsed if isinstance(parsed, dict) else str(args_raw)
            except (ValueError, TypeError):
                args = str(args_raw)
        return cls(id=str(raw.get("id") or new_id("call_")), name=str(fn.get("name", "")), arguments=args)


class Message(_Wire):
    """One chat message in the OpenAI format."""

    role: Role
    content: Union[str, list[ContentPart], None] = None
    """Text, a list of text/image parts, or None (an assistant message that only calls tools)."""
    tool_calls: Union[list[ToolCall], None] = None
    """Tool calls of an assistant message."""
    tool_call_id: Union[str, None] = None
    """For a tool message: the id of the call it answers."""
    name: Union[str, None] = None
    """For a tool message: the tool's name; otherwise an optional participant name."""
    reasoning_content: Union[str, None] = None
    """Reasoning text returned separately by some servers (kept, never re-rendered into content)."""

    @property
    def text(self) -> str:
        """The text of this message (image parts skipped)."""
        return text_of(self.content)

    def to_openai(self) -> dict[str, Any]:
        """This message as an OpenAI chat request dict (no None fields)."""
        d: dict[str, Any] = {"role": self.role}
        if isinstance(self.content, list):
            d["content"] = [p.model_dump() for p in self.content]
        else:
            d["content"] = self.content
        if self.tool_calls:
            d["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        if self.tool_call_id is not None:
            d["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            d["name"] = self.name
        return d


def text_of(content: Union[str, list[ContentPart], None]) -> str:
    """Text of a message content (parts joined, images skipped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.text for p in content if isinstance(p, TextPart))


class ToolSpec(_Wire):
    """A tool as the model sees it (OpenAI function-tool shape)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    """JSON Schema of the arguments object."""

    def to_openai(self) -> dict[str, Any]:
        """This spec as an OpenAI ``tools`` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class ToolResult(_Wire):
    """What a tool returned for one call."""

    call_id: str
    content: Union[str, list[ContentPart]] = ""
    is_error: bool = False
    """True when the call failed (unknown tool, bad arguments, exception, timeout)."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Anything for logs and judges (exit code, duration, truncation); never shown to the model."""


class SamplingParams(_Wire):
    """Sampling parameters passed to a policy."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: Union[int, None] = None
    stop: Union[list[str], None] = None
    seed: Union[int, None] = None
    logprobs: bool = True
    """Ask the server for per-token logprobs (and token ids when it can give them)."""
    extra: dict[str, Any] = Field(default_factory=dict)
    """Extra request fields passed through verbatim (e.g. ``top_k``, ``repetition_penalty``)."""


class Usage(_Wire):
    """Token counts reported for one completion."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


_NO_USAGE = Usage()


class Completion(_Wire):
    """One model call's result: the assistant message plus token-exact data when the server gives it."""

    message: Message
    prompt_ids: Union[list[int], None] = None
    """Token ids of the prompt exactly as the server saw it."""
    completion_ids: Union[list[int], None] = None
    """Token ids exactly as sampled."""
    logprobs: Union[list[float], None] = None
    """Sampler logprob of each completion id (same length as ``completion_ids``)."""
    policy_version: int = 0
    """Version of the policy weights that produced this completion (partial rollouts span versions)."""
    finish_reason: Union[str, None] = None
    usage: Usage = _NO_USAGE  # frozen, so one shared instance is safe (a default_factory costs ~0.6 µs per call)
    token_exact: bool = False
    """True when ``prompt_ids``/``completion_ids`` are the server's own ids (not re-tokenised text)."""
    latency_s: float = 0.0
    """Wall time of the call (for metrics)."""


class Task(_Wire):
    """A problem an episode works on."""

    id: str
    prompt: Union[str, list[Message]]
    """The user prompt, or a whole starting conversation."""
    answer: Any = None
    """Reference answer for judges (any JSON value)."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Source, difficulty, oracle hints, constraint specs added by enhancers …"""


class JudgeResult(_Wire):
    """A judge's verdict: scalar reward plus named facets (each usually in [0, 1])."""

    reward: float = 0.0
    facets: dict[str, float] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict)
    outcome: JudgeOutcome = "ok"
    """Whether the judge itself worked: ``"error"`` (it raised, or gave no valid result) or ``"timeout"`` (it
    ran out of time) mean the reward is not a verdict; such trajectories are not trainable by default."""


class Trajectory(BaseModel):
    """The full record of one episode; children (sub-agents, agent judges) point up through ``parent_id``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    id: str = Field(default_factory=lambda: new_id("traj_"))
    task_id: str = ""
    sample_index: int = 0
    """Index of this sample within its group (the store's resume key is ``(task_id, sample_index)``)."""
    env_id: str = ""
    group_id: Union[str, None] = None
    parent_id: Union[str, None] = None
    role: str = "main"
    trainable: bool = True
    """False for frozen roles (sub-agents, judges), for episodes cancelled from outside (their reward is no
    verdict), and for judge failures unless the env keeps them: their tokens never get a loss."""
    messages: list[Message] = Field(default_factory=list)
    """Full conversation, whatever the context strategy showed the policy."""
    completions: list[Completion] = Field(default_factory=list)
    tools: list[ToolSpec] = Field(default_factory=list)
    reward: float = 0.0
    judge: Union[JudgeResult, None] = None
    metrics: dict[str, float] = Field(default_factory=dict)
    status: TrajectoryStatus = "ok"
    error: Union[str, None] = None
    children: list[str] = Field(default_factory=list)
    """Ids of child trajectories spawned by this episode (stored separately)."""
    info: dict[str, Any] = Field(default_factory=dict)

    def __setattr__(self, name: str, value: Any) -> None:
        # The loop sets status/reward/judge on every episode; pydantic's generic __setattr__ takes ~0.85 µs
        # a call. Fields are not validated on assignment anyway (validate_assignment=False): store and record.
        if name in _TRAJECTORY_FIELDS:
            self.__dict__[name] = value
            self.__pydantic_fields_set__.add(name)
        else:
            super().__setattr__(name, value)

    def _assign(self, **fields: Any) -> None:
        """Set several fields at once without validation (the loop's own, already well-typed values)."""
        self.__dict__.update(fields)
        self.__pydantic_fields_set__.update(fields)

    @property
    def num_turns(self) -> int:
        """Number of assistant turns."""
        return sum(1 for m in self.messages if m.role == "assistant")

    @property
    def final_text(self) -> str:
        """Text of the last assistant message ('' if none)."""
        for m in reversed(self.messages):
            if m.role == "assistant":
                return m.text
        return ""

    @property
    def policy_versions(self) -> list[int]:
        """Policy version of each completion, in order (segments of a partial rollout)."""
        return [c.policy_version for c in self.completions]


_TRAJECTORY_FIELDS = frozenset(Trajectory.model_fields)


_OPENAI_RESPONSE_ONLY = ("refusal", "annotations", "audio", "function_call")


def coerce_action(action: Any) -> Completion:
    """Turn any accepted action into a Completion.

    Raises:
        TypeError: the action is not a str, dict, Message or Completion.
        ValueError: a dict/Message that is not a valid assistant message.
    """
    if isinstance(action, Completion):
        if action.message.role != "assistant":
            raise ValueError(f"action message must have role 'assistant', got {action.message.role!r}")
        return action
    if isinstance(action, str):
        return Completion(message=Message(role="assistant", content=action))
    if isinstance(action, Message):
        if action.role != "assistant":
            raise ValueError(f"action message must have role 'assistant', got {action.role!r}")
        return Completion(message=action)
    if isinstance(action, dict):
        d = dict(action)
        d.setdefault("role", "assistant")
        # An OpenAI response message dumped to a dict carries response-only keys that are empty unless the
        # server used them; accept such a dict as it comes instead of failing on extra keys.
        for key in _OPENAI_RESPONSE_ONLY:
            if key in d and not d[key]:
                del d[key]
        calls = d.get("tool_calls")
        if calls:
            d["tool_calls"] = [
                ToolCall.from_openai(c) if isinstance(c, dict) and "function" in c else c for c in calls
            ]
        msg = Message.model_validate(d)  # pydantic ValidationError is a ValueError
        if msg.role != "assistant":
            raise ValueError(f"action message must have role 'assistant', got {msg.role!r}")
        return Completion(message=msg)
    raise TypeError(
        f"action must be a str, an OpenAI-style dict, a Message or a Completion, got {type(action).__name__}"
    )


def truncate_middle(text: str, limit: int) -> str:
    """Keep the head and tail of ``text`` within ``limit`` chars, with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    keep = limit - 80
    head = keep // 2
    tail = keep - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} characters truncated ...]\n{text[-tail:]}"
