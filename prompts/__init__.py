"""Prompt enhancement: seeded diversifiers and verifiable instruction constraints."""

from .base import (
    Chain,
    PromptEnhancer,
    append_to_prompt,
    enhance_task,
    prompt_text,
    task_rng,
    with_metadata,
)
from .compose import compose_response
from .constraints import (
    KINDS,
    REGISTRY,
    ConstraintKind,
    check,
    check_all,
    compatible,
    sample_constraint,
)
from .diversify import (
    AnswerFormatVariant,
    FewShot,
    RephraseInstruction,
    SystemPromptVariant,
)
from .instructions import InstructionEnhancer, InstructionJudge

__all__ = [
    "KINDS",
    "REGISTRY",
    "AnswerFormatVariant",
    "Chain",
    "ConstraintKind",
    "FewShot",
    "InstructionEnhancer",
    "InstructionJudge",
    "PromptEnhancer",
    "RephraseInstruction",
    "SystemPromptVariant",
    "append_to_prompt",
    "check",
    "check_all",
    "compatible",
    "compose_response",
    "enhance_task",
    "prompt_text",
    "sample_constraint",
    "task_rng",
    "with_metadata",
]
