"""An in-process transformers model as a Policy, batching concurrent episodes (extra ``[hf]``).

Concurrent episodes each await ``complete``; their requests are collected for a few milliseconds, left-padded
into one batch and generated together (in a worker thread, so the event loop keeps running tools). Prompts
are built token-in-token-out by a :class:`~swarmgym.training.tito.TokenizedConversation` kept in the
episode's ``PolicyContext.state``, so every Completion is token-exact: ``prompt_ids`` are the ids the model
read, ``completion_ids`` the ids it sampled, ``logprobs`` their log-probabilities.

Logprobs are taken from the raw logits divided by the temperature (``log_softmax(logits / T)``), before
top-p/top-k truncation — the quantity a trainer recomputes (see :mod:`swarmgym.training.logprobs`), so the
train–inference gap is measured on equal terms. Greedy decoding (temperature 0) reports ``log_softmax(logits)``.

Requests with different sampling settings (temperature, top-p, top-k, seed, stop strings …) go in different
batches; ``max_tokens`` may differ within a batch (each row is cut to its own limit). A ``seed`` makes a
request reproducible given the same batch composition (one RNG serves a batch).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PolicyError
from ..wire import Completion, Message, SamplingParams, ToolSpec, Usage
from .base import PolicyContext

if TYPE_CHECKING:
    from ..chat.tokens import TokenizedConversation

__all__ = ["HFPolicy"]

_EXTRA_KEYS = ("top_k", "min_p", "repetition_penalty", "typical_p", "no_repeat_ngram_size")


def _require_hf() -> None:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        raise ConfigError(
            f"HFPolicy needs the hf extra (torch, transformers, tokenizers): pip install 'swarmgym[hf]' ({e})"
        ) from e


@dataclass(slots=True, eq=False)
class _Request:
    prompt: list[int]
    key: tuple[Any, ...]
    max_tokens: int
    stop: tuple[str, ...]
    result: tuple[list[int], list[float], str] | None = None
    error: BaseException | None = None
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class HFPolicy:
    """A local transformers causal LM behind the Policy protocol.

    Args:
        model: a ``PreTrainedModel`` or a model path/name for ``AutoModelForCausalLM.from_pretrained``.
        tokenizer: the tokenizer (default: loaded from ``model`` when it is a path).
        conversation: the token-in-token-out builder (default: ``TokenizedConversation(tokenizer)``).
        device: where to run (default: the model's device; for a path, CUDA when available, else CPU).
        batch_window_s: how long the first request of a batch waits for others to join.
        max_batch: most rows generated together.
        default_max_tokens: completion budget when ``sampling.max_tokens`` is None.
        policy_version: stamped on every Completion (bump it when weights change).

    Raises:
        ConfigError: torch/transformers missing (install ``swarmgym[hf]``), or no tokenizer.

    Example:
        >>> import anyio
        >>> from swarmgym.training.tiny import make_tiny_model, make_tiny_tokenizer
        >>> from swarmgym.wire import Message, SamplingParams
        >>> tok = make_tiny_tokenizer()
        >>> policy = HFPolicy(make_tiny_model(tok), tok)
        >>> c = anyio.run(policy.complete, [Message(role="user", content="hi")], [],
        ...               SamplingParams(max_tokens=5, seed=0))
        >>> len(c.completion_ids) <= 5, len(c.logprobs) == len(c.completion_ids), c.token_exact
        (True, True, True)
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        conversation: TokenizedConversation | None = None,
        device: Any = None,
        batch_window_s: float = 0.005,
        max_batch: int = 64,
        default_max_tokens: int = 256,
        policy_version: int = 0,
    ) -> None:
        _require_hf()
        import torch

        if isinstance(model, str):
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            model = AutoModelForCausalLM.from_pretrained(model)
            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if tokenizer is None:
            raise ConfigError("HFPolicy needs a tokenizer: HFPolicy(model, tokenizer)")
        if device is not None:
            model = model.to(device)
        model.eval()
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        if conversation is None:
            from ..chat.tokens import TokenizedConversation

            conversation = TokenizedConversation(tokenizer)
        self.conversation = conversation
        self.batch_window_s = batch_window_s
        self.max_batch = max_batch
        self.default_max_tokens = default_max_tokens
        self.policy_version = policy_version
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ConfigError("the tokenizer has neither pad_token_id nor eos_token_id; set tokenizer.pad_token")
        self.pad_id: int = int(pad)
        self.stop_ids: list[int] = list(conversation.stop_token_ids) or [int(tokenizer.eos_token_id)]
        self._pending: list[_Request] = []
        self._busy = False
        self._changed: Any = None
        self.batches_run = 0
        """Number of generate calls so far (for tests and metrics)."""

    # ------------------------------------------------------------------ Policy protocol
    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        sampling: SamplingParams,
        *,
        ctx: PolicyContext | None = None,
    ) -> Completion:
        """Sample the next assistant message (token-exact; see the module docstring)."""
        t0 = time.perf_counter()
        state = ctx.state if ctx is not None else {}
        prompt = self.conversation.prompt_ids(messages, tools, state)
        req = self._request(prompt, sampling)
        await self._submit(req)
        if req.error is not None:
            raise PolicyError(f"local model generation failed: {req.error}") from req.error
        assert req.result is not None  # set together with done
        ids, lps, finish = req.result
        message = self.conversation.parse(ids, None, remember=False)
        self.conversation.record(state, messages, prompt, ids)
        return Completion(
            message=message,
            prompt_ids=prompt,
            completion_ids=ids,
            logprobs=lps if sampling.logprobs else None,
            policy_version=self.policy_version,
            finish_reason=finish,
            usage=Usage(prompt_tokens=len(prompt), completion_tokens=len(ids)),
            token_exact=True,
            latency_s=time.perf_counter() - t0,
        )

    # ------------------------------------------------------------------ batching
    def _request(self, prompt: list[int], sampling: SamplingParams) -> _Request:
        unknown = sorted(set(sampling.extra) - set(_EXTRA_KEYS))
        if unknown:
            raise ConfigError(
                f"HFPolicy does not support sampling.extra keys {unknown}; supported: {list(_EXTRA_KEYS)}"
            )
        if sampling.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {sampling.temperature}")
        stop = tuple(sampling.stop or ())
        extra = {k: sampling.extra[k] for k in _EXTRA_KEYS if k in sampling.extra}
        key = (sampling.temperature, sampling.top_p, sampling.seed, stop, tuple(sorted(extra.items())))
        max_tokens = sampling.max_tokens if sampling.max_tokens is not None else self.default_max_tokens
        return _Request(prompt=prompt, key=key, max_tokens=max(0, max_tokens), stop=stop, extra=extra)

    async def _submit(self, req: _Request) -> None:
        """Queue ``req`` and return once it is generated; whoever finds the model idle runs the next batch."""
        import anyio

        if self._changed is None:
            self._changed = anyio.Event()
        self._pending.append(req)
        try:
            while not req.done:
                if self._busy:
                    await self._changed.wait()
                    continue
                self._busy = True
                try:
                    await anyio.sleep(self.batch_window_s)  # let concurrent episodes join this batch
                    batch = self._take(req)
                    await anyio.to_thread.run_sync(self._run_batch, batch)
                finally:
                    self._busy = False
                    changed, self._changed = self._changed, anyio.Event()
                    changed.set()
        finally:
            if not req.done and req in self._pending:
                self._pending.remove(req)

    def _take(self, leader: _Request) -> list[_Request]:
        """Up to ``max_batch`` pending requests that share the leader's sampling settings."""
        batch = [r for r in self._pending if r.key == leader.key][: self.max_batch]
        taken = set(map(id, batch))
        self._pending = [r for r in self._pending if id(r) not in taken]
        return batch

    def _run_batch(self, batch: list[_Request]) -> None:
        """Generate ``batch`` (runs in a worker thread); every request ends done, with a result or an error."""
        try:
            results = self._generate(batch)
            for r, res in zip(batch, results):
                r.result = res
        except Exception as e:  # a model failure fails this batch's requests, not the process
            for r in batch:
                r.error = e
        finally:
            for r in batch:
                r.done = True
            self.batches_run += 1

    def _generate(self, batch: list[_Request]) -> list[tuple[list[int], list[float], str]]:
        import torch
        from transformers import GenerationConfig

        first = batch[0]
        temperature, top_p, seed, stop, _ = first.key
        max_new = max(r.max_tokens for r in batch)
        if max_new == 0:
            return [([], [], "length") for _ in batch]
        width = max(len(r.prompt) for r in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):  # left padding: every row's next token is at the same position
            ids[i, width - len(r.prompt) :] = torch.tensor(r.prompt, dtype=torch.long)
            mask[i, width - len(r.prompt) :] = 1
        sample = temperature > 0
        cfg: dict[str, Any] = {
            "max_new_tokens": max_new,
            "do_sample": sample,
            "eos_token_id": self.stop_ids,
            "pad_token_id": self.pad_id,
            "output_logits": True,
            "return_dict_in_generate": True,
        }
        if sample:
            cfg.update(temperature=temperature, top_p=top_p, top_k=first.extra.get("top_k", 0))
        else:
            cfg.update(temperature=None, top_p=None, top_k=None)
        cfg.update({k: v for k, v in first.extra.items() if k != "top_k"})
        kwargs: dict[str, Any] = {}
        if stop:
            cfg["stop_strings"] = list(stop)
            kwargs["tokenizer"] = self.tokenizer
        config = GenerationConfig(**cfg)
        with torch.inference_mode(), torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            out = self.model.generate(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device), generation_config=config, **kwargs
            )
            new = out.sequences[:, width:]
            scale = 1.0 / temperature if sample else 1.0
            steps = len(out.logits)
            lp = torch.empty((len(batch), steps), dtype=torch.float32)
            for s, logits in enumerate(out.logits):
                dist = torch.log_softmax(logits.float() * scale, dim=-1)
                lp[:, s] = dist.gather(-1, new[:, s : s + 1]).squeeze(-1).cpu()
        rows = new.cpu().tolist()
        lps = lp.tolist()
        return [self._cut(r, row[:steps], lp_row) for r, row, lp_row in zip(batch, rows, lps)]

    def _cut(self, req: _Request, row: list[int], lps: list[float]) -> tuple[list[int], list[float], str]:
        """Each row's own completion: up to its first end-of-turn id, stop string or token limit."""
        stop_ids = self.stop_ids
        end, finish = min(len(row), req.max_tokens), "length"
        for i in range(end):
            if row[i] in stop_ids:
                end, finish = i + 1, "stop"
                break
        if req.stop:
            for i in range(end):  # incremental decode: the first token that completes a stop string ends it
                text = self.tokenizer.decode(row[: i + 1])
                if any(s in text for s in req.stop):
                    end, finish = i + 1, "stop"
                    break
        return row[:end], lps[:end], finish
