"""Trainer-side logprobs: one forward pass over whole sequences (no KV cache), as a trainer computes them.

Use it to measure or correct the train–inference mismatch: compare with the sampler's logprobs stored in a
:class:`~swarmgym.training.batch.Batch` (see :mod:`swarmgym.training.mismatch`). Needs torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["sequence_logprobs"]


def sequence_logprobs(
    model: Any, input_ids: Any, attention_mask: Any, *, temperature: float = 1.0, chunk: int = 16
) -> Any:
    """Logprob of every token given the tokens before it, aligned with ``input_ids`` (position 0 gets 0).

    Args:
        model: a causal LM returning ``.logits`` (a transformers model).
        input_ids: ``[B, L]`` ids (numpy or torch), right-padded.
        attention_mask: ``[B, L]`` 1 on real tokens.
        temperature: divide logits by this before the softmax — the same scaling the sampler used, so the
            two are comparable (a sampler at temperature T samples from ``softmax(logits / T)``).
        chunk: rows per forward pass (bounds memory).

    Returns:
        A float32 ``[B, L]`` tensor on the model's device (0 on padding and at position 0).
    """
    import torch

    device = next(model.parameters()).device
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    mask = torch.as_tensor(attention_mask, dtype=torch.long)
    out = torch.zeros(ids.shape, dtype=torch.float32)
    scale = 1.0 / temperature if temperature > 0 else 1.0
    with torch.inference_mode():
        for start in range(0, ids.shape[0], chunk):
            x = ids[start : start + chunk].to(device)
            m = mask[start : start + chunk].to(device)
            logits = model(input_ids=x, attention_mask=m).logits.float()
            lp = torch.log_softmax(logits[:, :-1] * scale, dim=-1)
            picked = lp.gather(-1, x[:, 1:, None]).squeeze(-1) * m[:, 1:]
            out[start : start + chunk, 1:] = picked.cpu()
    return out
