"""An in-process transformers model as a Policy, batching concurrent episodes (extra ``[hf]``).

Concurrent episodes each await ``complete``; their requests are collected for a few milliseconds, left-padded
into one batch and decoded together (in a worker thread, so the event loop keeps running tools). Prompts
are built token-in-token-out by a :class:`~swarmgym.training.tito.TokenizedConversation` kept in the
episode's ``PolicyContext.state``, so every Completion is token-exact: ``prompt_ids`` are the ids the model
read, ``completion_ids`` the ids it sampled, ``logprobs`` their log-probabilities.

Decoding is a plain KV-cached loop over the model's forward pass rather than ``model.generate``, for two
reasons: every row draws from its own ``torch.Generator`` (a request's ``seed`` reproduces its completion
whatever else shares the batch, so seeded episodes still batch together), and a row that finished is
dropped from the batch at once (``generate`` keeps computing padding for it until the slowest row ends).

Logprobs are taken from the raw logits divided by the temperature (``log_softmax(logits / T)``), before
repetition penalties and top-p/top-k/min-p truncation — the quantity a trainer recomputes (see
:mod:`swarmgym.training.logprobs`), so the train–inference gap is measured on equal terms. Greedy decoding
(temperature 0) reports ``log_softmax(logits)``.

Requests with different temperature, top-p or ``sampling.extra`` settings go in different batches; ``seed``,
``stop`` strings and ``max_tokens`` are per row.

Tools: when the chat template does not render a ``tools`` list (SmolLM2 and other plain ChatML templates),
the conversation is rewritten with :class:`~swarmgym.policies.tool_prompt.ToolPrompt` (tools described in the
system message, ``<tool_call>{…}</tool_call>`` lines parsed from the output, results as user turns).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ConfigError, PolicyError
from ..wire import Completion, Message, SamplingParams, ToolSpec, Usage
from .base import PolicyContext
from .tool_prompt import ToolPrompt, template_renders_tools

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
    seed: int | None = None
    result: tuple[list[int], list[float], str] | None = None
    error: BaseException | None = None
    done: bool = False


class HFPolicy:
    """A local transformers causal LM behind the Policy protocol.

    Args:
        model: a ``PreTrainedModel``, a folder for ``AutoModelForCausalLM.from_pretrained``, or the name of a
            fetched real model (``"smollm2"``; see :mod:`swarmgym.models`).
        tokenizer: the tokenizer (default: loaded from ``model`` when it is a path or name).
        conversation: the token-in-token-out builder (default: ``TokenizedConversation(tokenizer)``).
        device: where to run (default: the model's device; for a path, CUDA when available, else CPU).
        batch_window_s: how long the first request of a batch waits for others to join.
        max_batch: most rows generated together.
        default_max_tokens: completion budget when ``sampling.max_tokens`` is None.
        policy_version: stamped on every Completion (bump it when weights change).
        tool_prompt: ``"auto"`` (default) rewrites tool use as text with a :class:`ToolPrompt` when the chat
            template ignores ``tools``; ``"never"`` always passes tools to the template; or a ToolPrompt to
            always use.

    Raises:
        ConfigError: torch/transformers missing (install ``swarmgym[hf]``), or no tokenizer.
        ModelNotFetchedError: ``model`` names a known real model that is not fetched (the message says how).

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
        tool_prompt: ToolPrompt | Literal["auto", "never"] = "auto",
    ) -> None:
        _require_hf()
        import inspect

        import torch

        if isinstance(model, str):
            from transformers import AutoModelForCausalLM, AutoTokenizer

            model = _resolve_model_path(model)
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
        if tool_prompt == "auto":
            renders = template_renders_tools(conversation.renderer) if hasattr(conversation, "renderer") else True
            tool_prompt = "never" if renders else ToolPrompt()
        elif tool_prompt != "never" and not isinstance(tool_prompt, ToolPrompt):
            raise ConfigError(f"tool_prompt must be 'auto', 'never' or a ToolPrompt, got {tool_prompt!r}")
        self.tool_prompt: ToolPrompt | None = None if tool_prompt == "never" else tool_prompt
        """How tools reach a template without tool support (None: the template renders them itself)."""
        params = inspect.signature(model.forward).parameters
        # transformers 5 renamed ``past_key_values`` to ``cache``; ``logits_to_keep=1`` skips the LM head on
        # every prompt position but the last (most of a prefill's cost for a small model with a big vocabulary)
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_kw = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
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
        if self.tool_prompt is not None:  # deterministic per message, so the rewritten conversation is append-only
            messages, tools = self.tool_prompt.apply(messages, tools), []
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
        # seed, stop strings and max_tokens are per row; only what shapes the whole batch's logits is shared
        key = (sampling.temperature, sampling.top_p, tuple(sorted(extra.items())))
        max_tokens = sampling.max_tokens if sampling.max_tokens is not None else self.default_max_tokens
        return _Request(prompt=prompt, key=key, max_tokens=max(0, max_tokens), stop=stop, seed=sampling.seed)

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
        """One decode loop over ``batch`` (see the module docstring for why not ``model.generate``)."""
        import torch

        temperature, top_p, extras = batch[0].key
        extra = dict(extras)
        sample = temperature > 0
        n = len(batch)
        results: list[tuple[list[int], list[float], str] | None] = [None] * n
        for i, r in enumerate(batch):
            if r.max_tokens == 0:
                results[i] = ([], [], "length")
        live = [i for i in range(n) if results[i] is None]
        if not live:
            return [res for res in results if res is not None]
        width = max(len(batch[i].prompt) for i in live)
        ids = torch.full((len(live), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(live), width), dtype=torch.long)
        for k, i in enumerate(live):  # left padding: every row's next token is at the same position
            p = batch[i].prompt
            ids[k, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[k, width - len(p) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        # one generator per row: a row's draws depend only on its own seed, never on its batch neighbours
        gens = [_row_generator(batch[i].seed) for i in live] if sample else []
        processors, warpers = _processors(extra, top_p) if (extra or top_p < 1.0) else ([], [])
        out_ids: list[list[int]] = [[] for _ in range(n)]
        out_lps: list[list[float]] = [[] for _ in range(n)]
        stop_ids = torch.tensor(self.stop_ids, dtype=torch.long)
        max_new = max(batch[i].max_tokens for i in live)
        seq = ids  # full rows (prompt + sampled), for history-based processors only
        cache: Any = None
        cur, dev = ids, self.device
        with torch.inference_mode():
            for _step in range(max_new):
                out = self.model(
                    input_ids=cur.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                    use_cache=True, **{self._cache_kw: cache}, **self._keep_kw,
                )  # fmt: skip
                cache = out.get(self._cache_kw)  # the attribute of the other name logs a deprecation
                raw = out.logits[:, -1, :].float().cpu()
                logits = raw
                for proc in processors:
                    logits = proc(seq, logits)
                if sample:
                    scaled = logits / temperature
                    for w in warpers:
                        scaled = w(seq, scaled)
                    probs = torch.softmax(scaled, dim=-1)
                    cdf = probs.cumsum(-1)
                    u = torch.stack([1.0 - torch.rand((), generator=g) for g in gens])  # in (0, 1]
                    tok = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1)).squeeze(-1)
                    tok = tok.clamp(max=cdf.shape[-1] - 1)
                    dist = torch.log_softmax(raw / temperature, dim=-1)
                else:
                    tok = logits.argmax(-1)
                    dist = torch.log_softmax(raw, dim=-1)
                lp = dist.gather(-1, tok.unsqueeze(-1)).squeeze(-1)
                ended = torch.isin(tok, stop_ids)
                keep: list[int] = []
                for k, i in enumerate(live):
                    r = batch[i]
                    out_ids[i].append(int(tok[k]))
                    out_lps[i].append(float(lp[k]))
                    if bool(ended[k]):
                        results[i] = (out_ids[i], out_lps[i], "stop")
                    elif r.stop and any(s in self.tokenizer.decode(out_ids[i]) for s in r.stop):
                        results[i] = (out_ids[i], out_lps[i], "stop")
                    elif len(out_ids[i]) >= r.max_tokens:
                        results[i] = (out_ids[i], out_lps[i], "length")
                    else:
                        keep.append(k)
                if not keep:
                    break
                if len(keep) < len(live):  # drop finished rows: no compute is spent on padding after EOS
                    sel = torch.tensor(keep, dtype=torch.long)
                    cache.batch_select_indices(sel.to(dev))
                    live = [live[k] for k in keep]
                    gens = [gens[k] for k in keep] if sample else gens
                    tok, mask, pos = tok[sel], mask[sel], pos[sel]
                    if processors:
                        seq = seq[sel]
                cur = tok.unsqueeze(-1)
                mask = torch.cat([mask, torch.ones_like(cur)], dim=-1)
                pos = pos[:, -1:] + 1
                if processors:
                    seq = torch.cat([seq, cur], dim=-1)
        for i in live:  # still running when the loop's budget ran out (cannot happen; kept total)
            if results[i] is None:
                results[i] = (out_ids[i], out_lps[i], "length")
        return [res for res in results if res is not None]


def _resolve_model_path(spec: str) -> str:
    """A folder or hub id as given, or the converted folder of a known real model name (``smollm2``)."""
    import os

    from .. import models

    if os.path.exists(spec):
        return spec
    try:
        models.resolve_name(spec)
    except ConfigError:
        return spec  # not one of ours: let from_pretrained try it (and say what is wrong)
    return str(models.model_dir(spec))


def _row_generator(seed: int | None) -> Any:
    """A CPU generator for one row: seeded from the request, else from torch's global RNG."""
    import torch

    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    return torch.Generator().manual_seed(int(seed))


def _processors(extra: dict[str, Any], top_p: float) -> tuple[list[Any], list[Any]]:
    """transformers' own logits processors for ``extra``: (before temperature, after temperature)."""
    from transformers import generation as g

    before: list[Any] = []
    after: list[Any] = []
    if extra.get("repetition_penalty") not in (None, 1.0):
        before.append(g.RepetitionPenaltyLogitsProcessor(float(extra["repetition_penalty"])))
    if extra.get("no_repeat_ngram_size"):
        before.append(g.NoRepeatNGramLogitsProcessor(int(extra["no_repeat_ngram_size"])))
    if extra.get("top_k"):
        after.append(g.TopKLogitsWarper(int(extra["top_k"])))
    if extra.get("typical_p") not in (None, 1.0):
        after.append(g.TypicalLogitsWarper(float(extra["typical_p"])))
    if top_p < 1.0:
        after.append(g.TopPLogitsWarper(float(top_p)))
    if extra.get("min_p"):
        after.append(g.MinPLogitsWarper(float(extra["min_p"])))
    return before, after
