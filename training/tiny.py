"""Tiny tokenizers and random models built locally, for tests, benchmarks and examples (no downloads).

:func:`make_tiny_tokenizer` trains a small byte-level BPE with the ``tokenizers`` library on generated text
(chat markup, JSON tool calls, words) and wraps it as a ``PreTrainedTokenizerFast`` with one of the chat
templates in :data:`CHAT_TEMPLATES`; :func:`make_tiny_model` builds a randomly initialised Qwen2-style causal
LM sized for that tokenizer. Byte-level BPE decodes any id sequence and encodes any text, so a fake sampler
can emit arbitrary ids and the whole token-in-token-out path still works.

Templates (all Jinja, in the Hugging Face chat-template dialect):

- ``chatml_tools``: Qwen2.5-like ChatML; tools listed in the system turn, ``<tool_call>{json}</tool_call>``,
  consecutive tool results merged into one user turn (a neighbour-dependent template).
- ``qwen3_like``: ``chatml_tools`` plus reasoning: ``<think>`` is shown only for assistant turns after the
  last user query and stripped from earlier ones (not append-only when re-rendered).
- ``llama_like``: a BOS token, ``<|start|>role<|sep|>…<|eot|>`` with no newline between turns, tool calls
  rendered as bare JSON, a distinct end-of-turn token.
- ``counting`` (broken on purpose): the header states how many messages follow, so every new message
  rewrites the start of the prompt; token-in-token-out must refuse it with ``TokenDriftError``.

Needs the ``[hf]`` extra (``tokenizers``, ``transformers``; ``torch`` for the model).
"""

from __future__ import annotations

import functools
import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

__all__ = ["CHAT_TEMPLATES", "SPECIAL_TOKENS", "make_tiny_tokenizer", "make_tiny_model", "count_parameters"]

_CHATML_TOOLS = (
    "{% if tools %}<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "# Tools\n<tools>\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}</tools>\n"
    'Call a tool with <tool_call>{"name": ..., "arguments": ...}</tool_call>.<|im_end|>\n'
    "{% elif messages[0].role == 'system' %}<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n"
    "{% endif %}"
    "{% for m in messages %}"
    "{% if m.role == 'system' and loop.first %}"
    "{% elif m.role == 'assistant' %}<|im_start|>assistant\n"
    "{% if m.content %}{{ m.content }}{% endif %}"
    "{% for tc in m.tool_calls or [] %}{% if loop.first and m.content %}{{ '\\n' }}{% endif %}"
    '<tool_call>\n{"name": "{{ tc.function.name }}", "arguments": {{ tc.function.arguments | tojson }}}\n'
    "</tool_call>{% if not loop.last %}{{ '\\n' }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% elif m.role == 'tool' %}"
    "{% if loop.first or messages[loop.index0 - 1].role != 'tool' %}<|im_start|>user{% endif %}{{ '\\n' }}"
    "<tool_response>\n{{ m.content }}\n</tool_response>"
    "{% if loop.last or messages[loop.index0 + 1].role != 'tool' %}<|im_end|>\n{% endif %}"
    "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen3-style: reasoning of assistant turns before the last user query is dropped on re-render.
_QWEN3_LIKE = (
    "{% set ns = namespace(last_query=-1) %}"
    "{% for m in messages %}{% if m.role == 'user' %}{% set ns.last_query = loop.index0 %}{% endif %}"
    "{% endfor %}"
    "{% if tools %}<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "# Tools\n<tools>\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}</tools><|im_end|>\n"
    "{% elif messages[0].role == 'system' %}<|im_start|>system\n{{ messages[0].content }}<|im_end|>\n"
    "{% endif %}"
    "{% for m in messages %}"
    "{% if m.role == 'system' and loop.first %}"
    "{% elif m.role == 'assistant' %}"
    "{% set content = m.content or '' %}{% set reasoning = m.reasoning_content or '' %}"
    "{% if '</think>' in content %}"
    "{% set reasoning = content.split('</think>')[0].split('<think>')[-1].strip('\n') %}"
    "{% set content = content.split('</think>')[-1].lstrip('\n') %}{% endif %}"
    "<|im_start|>assistant\n"
    "{% if loop.index0 > ns.last_query and reasoning %}<think>\n{{ reasoning }}\n</think>\n\n{% endif %}"
    "{{ content }}"
    "{% for tc in m.tool_calls or [] %}{% if loop.first and content %}{{ '\\n' }}{% endif %}"
    '<tool_call>\n{"name": "{{ tc.function.name }}", "arguments": {{ tc.function.arguments | tojson }}}\n'
    "</tool_call>{% if not loop.last %}{{ '\\n' }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% elif m.role == 'tool' %}"
    "{% if loop.first or messages[loop.index0 - 1].role != 'tool' %}<|im_start|>user{% endif %}{{ '\\n' }}"
    "<tool_response>\n{{ m.content }}\n</tool_response>"
    "{% if loop.last or messages[loop.index0 + 1].role != 'tool' %}<|im_end|>\n{% endif %}"
    "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_LLAMA_LIKE = (
    "{{ bos_token }}"
    "{% if tools %}<|start|>system<|sep|>Tools: {% for t in tools %}{{ t | tojson }} {% endfor %}<|eot|>{% endif %}"
    "{% for m in messages %}<|start|>{{ m.role }}<|sep|>"
    "{% if m.tool_calls %}{% for tc in m.tool_calls %}"
    '{"name": "{{ tc.function.name }}", "parameters": {{ tc.function.arguments | tojson }}}'
    "{% endfor %}{% else %}{{ m.content }}{% endif %}<|eot|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start|>assistant<|sep|>{% endif %}"
)

# Deliberately not prefix-preserving: the first line changes whenever a message is added.
_COUNTING = (
    "<|im_start|>system\n{{ messages | length }} messages follow<|im_end|>\n"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content or '' }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CHAT_TEMPLATES: dict[str, str] = {
    "chatml_tools": _CHATML_TOOLS,
    "qwen3_like": _QWEN3_LIKE,
    "llama_like": _LLAMA_LIKE,
    "counting": _COUNTING,
}
"""Chat templates for the tiny tokenizer, by name (see the module docstring)."""

# (token, special): "special" tokens are dropped by ``decode(skip_special_tokens=True)``; like Qwen's, the
# tool-call markers are ordinary added tokens so servers that skip special tokens still show them.
SPECIAL_TOKENS: list[tuple[str, bool]] = [
    ("<pad>", True),
    ("<s>", True),
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|start|>", True),
    ("<|sep|>", True),
    ("<|eot|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
]

_WORDS = (
    "the a of to and in is it you that he was for on are with as I his they be at one have this from or had "
    "by word but what some we can out other were all there when up use your how said an each she which do "
    "their time if will way about many then them write would like so these her long make thing see him two "
    "has look more day could go come did number sound no most people my over know water than call first who "
    "may down side been now find answer result file path error value python print import def return search "
    "query add sum total compute calculate weather city tool submit code test list read open true false null"
).split()


def _corpus(n: int, seed: int) -> list[str]:
    """Generated training text: chat markup, JSON tool calls, numbers and words in varied spacing."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 14)))
        num = str(rng.randint(0, 10**rng.randint(1, 6)))
        kind = rng.random()
        if kind < 0.3:
            lines.append(
                '{"name": "' + rng.choice(_WORDS) + '", "arguments": {"' + rng.choice(_WORDS) + '": "'
                + words + '", "n": ' + num + "}}"
            )
        elif kind < 0.5:
            lines.append(f"{words}\n\n{num} + {rng.randint(0, 99)} = ?")
        elif kind < 0.6:
            lines.append(f"def {rng.choice(_WORDS)}(x):\n    return x * {num}\n")
        else:
            lines.append(words.capitalize() + rng.choice([".", "?", "!", ":", ",", "\n"]))
    return lines


@functools.lru_cache(maxsize=4)
def _trained_tokenizer_json(vocab_size: int, seed: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[t for t, _ in SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(3000, seed), trainer=trainer)
    return str(tok.to_str())


def make_tiny_tokenizer(
    template: str = "chatml_tools", *, vocab_size: int = 1024, seed: int = 0
) -> PreTrainedTokenizerFast:
    """A small byte-level BPE tokenizer trained on generated text, with a chat template.

    Args:
        template: a key of :data:`CHAT_TEMPLATES`, or a Jinja chat template string.
        vocab_size: BPE vocabulary size (special tokens included).
        seed: seed of the generated training text (same seed → same vocabulary).

    Returns:
        A ``PreTrainedTokenizerFast``; ``eos_token`` is the template's end-of-turn token.

    Example:
        >>> tok = make_tiny_tokenizer("chatml_tools")
        >>> text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
        >>> text
        '<|im_start|>user\\nhi<|im_end|>\\n'
        >>> tok.decode(tok.encode(text, add_special_tokens=False)) == text
        True
    """
    try:
        from tokenizers import AddedToken, Tokenizer
        from transformers import PreTrainedTokenizerFast
    except ImportError as e:
        from ..errors import ConfigError

        raise ConfigError("tiny tokenizers need the hf extra: pip install 'swarmgym[hf]'") from e

    chat_template = CHAT_TEMPLATES.get(template, template)
    backend = Tokenizer.from_str(_trained_tokenizer_json(vocab_size, seed))
    # Re-register the specials with their "special" flag (the trainer adds them all as special).
    backend.add_tokens([AddedToken(t, special=s, normalized=False) for t, s in SPECIAL_TOKENS if not s])
    eos = "<|eot|>" if template == "llama_like" else "<|im_end|>"
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token=eos,
        pad_token="<pad>",
        unk_token=None,
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = chat_template
    return tok


def make_tiny_model(
    tokenizer: Any,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    intermediate_size: int | None = None,
    max_positions: int = 4096,
    seed: int = 0,
) -> PreTrainedModel:
    """A randomly initialised Qwen2-style causal LM for ``tokenizer`` (fp32, eval mode, on CPU).

    Args:
        tokenizer: the tokenizer whose vocabulary and special ids the model uses.
        hidden_size / num_layers / num_heads / num_kv_heads / intermediate_size: model shape.
        max_positions: maximum sequence length.
        seed: torch seed for the random weights (same seed → same model).

    Example:
        >>> tok = make_tiny_tokenizer()
        >>> model = make_tiny_model(tok)
        >>> count_parameters(model) < 200_000
        True
    """
    try:
        import torch
        from transformers import Qwen2Config, Qwen2ForCausalLM
    except ImportError as e:
        from ..errors import ConfigError

        raise ConfigError("tiny models need the hf extra: pip install 'swarmgym[hf]'") from e

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads or num_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.eval()
    return model


def count_parameters(model: Any) -> int:
    """Number of distinct parameters of a torch model (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())
