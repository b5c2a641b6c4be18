"""``SGLangPolicy``: token-in/token-out generation through SGLang's native ``POST /generate``.

The prompt goes out as ``input_ids`` built by a :class:`~swarmgym.policies.openai_http.ChatTokenizer`; the
sampled ``output_ids`` and ``meta_info.output_token_logprobs`` come back verbatim, so completions are
token-exact. (For SGLang's OpenAI-compatible chat endpoint use ``OpenAIPolicy`` in chat mode instead.)

Example:
    >>> from swarmgym.policies.sglang import SGLangPolicy
    >>> from swarmgym.testing import ToyChatTokenizer
    >>> SGLangPolicy("http://localhost:30000", ToyChatTokenizer()).base_url
    'http://localhost:30000'
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConfigError, PolicyError, PolicyHTTPError
from ..wire import Completion, Message, SamplingParams, ToolSpec, Usage
from ._http import HTTPClient, HTTPPolicyBase, json_dumps
from .openai_http import ChatTokenizer

if TYPE_CHECKING:
    from .base import PolicyContext

__all__ = ["SGLangPolicy"]

_DEFAULT_SAMPLING = SamplingParams()


class SGLangPolicy(HTTPPolicyBase):
    """A token-exact policy served by SGLang's ``/generate``.

    Args:
        base_url: the SGLang server root, e.g. ``http://localhost:30000`` (a trailing ``/v1`` is dropped).
        tokenizer: builds prompt ids and parses sampled ids (see ``ChatTokenizer``).
        api_key: sent as a bearer token when given.
        timeout, max_retries, backoff_base, backoff_max, max_connections: as for ``OpenAIPolicy``.
        policy_version: stamped on completions unless the server reports a numeric ``weight_version``.

    ``SamplingParams.extra`` goes into SGLang's ``sampling_params`` (e.g. ``top_k``, ``min_p``).
    """

    def __init__(
        self,
        base_url: str,
        tokenizer: ChatTokenizer,
        api_key: str | None = None,
        *,
        timeout: float | None = 60.0,
        max_retries: int = 4,
        backoff_base: float = 0.25,
        backoff_max: float = 8.0,
        max_connections: int = 256,
        policy_version: int = 0,
    ) -> None:
        url = base_url.rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"base_url must be an http(s) URL like 'http://localhost:30000', got {base_url!r}")
        if not isinstance(tokenizer, ChatTokenizer):
            raise ConfigError(
                "tokenizer must define prompt_ids(messages, tools, state) and parse(completion_ids, text); "
                f"got {type(tokenizer).__name__}"
            )
        url = url.removesuffix("/v1")
        self.tokenizer = tokenizer
        self.policy_version = policy_version
        self._record = getattr(tokenizer, "record", None)
        self._client = HTTPClient(
            url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_connections=max_connections,
        )
        self.base_url = self._client.base_url  # the URL with any password masked (reprs, errors)

    def __repr__(self) -> str:
        return f"SGLangPolicy({self.base_url!r})"


    def build_request(self, prompt_ids: list[int], sampling: SamplingParams) -> dict[str, Any]:
        """The ``/generate`` body for ``prompt_ids``."""
        sp: dict[str, Any] = {"temperature": sampling.temperature, "top_p": sampling.top_p}
        # SGLang caps at 128 new tokens when the field is absent; null means "up to the context length".
        sp["max_new_tokens"] = sampling.max_tokens
        if sampling.stop:
            sp["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            sp["sampling_seed"] = sampling.seed
        sp.update(sampling.extra)
        body: dict[str, Any] = {"input_ids": prompt_ids, "sampling_params": sp}
        if sampling.logprobs:
            body["return_logprob"] = True
            body["logprob_start_len"] = -1  # output tokens only: prompt logprobs cost server time
        return body

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        sampling: SamplingParams | None = None,
        *,
        ctx: PolicyContext | None = None,
    ) -> Completion:
        """Generate the next assistant message from token ids.

        Raises:
            PolicyConnectionError, PolicyHTTPError, PolicyTimeoutError: as for ``OpenAIPolicy``.
            PolicyHTTPError: the server aborted the request (status 400, its reason in the message).
        """
        sampling = sampling or _DEFAULT_SAMPLING
        state = ctx.state if ctx is not None else {}
        prompt_ids = self.tokenizer.prompt_ids(messages, tools, state)
        t0 = time.perf_counter()
        data = await self._client.post("/generate", json_dumps(self.build_request(prompt_ids, sampling)))
        latency = time.perf_counter() - t0
        if isinstance(data, list):  # a batch answer to a single prompt: take its only element
            data = data[0] if data else {}
        try:
            output_ids = data["output_ids"]
            meta = data.get("meta_info") or {}
        except (KeyError, TypeError):
            raise PolicyError(
                f"SGLang server at {self.base_url} answered /generate without output_ids: {str(data)[:300]} "
                f"— is this an SGLang server?"
            ) from None
        finish = meta.get("finish_reason")
        finish_type = finish.get("type") if isinstance(finish, dict) else finish
        if finish_type == "abort":
            reason = finish.get("message", "") if isinstance(finish, dict) else ""
            raise PolicyHTTPError(f"SGLang server at {self.base_url} aborted the request: {reason}", 400)
        logprobs = None
        out_lp = meta.get("output_token_logprobs")
        if out_lp is not None:
            logprobs = [e[0] for e in out_lp]
        version = self.policy_version
        wv = meta.get("weight_version")
        if isinstance(wv, int) or (isinstance(wv, str) and wv.isdigit()):
            version = int(wv)
        completion = Completion(
            message=self.tokenizer.parse(output_ids, data.get("text") or ""),
            prompt_ids=prompt_ids,
            completion_ids=output_ids,
            logprobs=logprobs,
            policy_version=version,
            finish_reason=finish_type,
            usage=Usage(
                prompt_tokens=meta.get("prompt_tokens") or len(prompt_ids),
                completion_tokens=meta.get("completion_tokens") or len(output_ids),
            ),
            token_exact=True,
            latency_s=latency,
        )
        if self._record is not None:
            self._record(state, messages, prompt_ids, output_ids)
        return completion
