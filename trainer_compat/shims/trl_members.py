"""The shims TRL's trainers need beyond Trainer's, per trainer kind (``patch(model, trainer=...)``): the members
TRL 1.16's DPOTrainer / GRPOTrainer (and SFTTrainer's fused LM head from 1.15) read of the model. See
``trainer_compat.rules.trl`` and ``trainer_compat.rules.trl_rl_step`` for the reads, cited from TRL's sources."""

from __future__ import annotations

from typing import Any

from torch import nn

from trainer_compat.shims.discover import resolve
from trainer_compat.subject import Provenance, Subject

FUSED_HEAD_KINDS = ("sft", "dpo", "grpo")  # TRL 1.15+/1.16 train them through base_model + get_output_embeddings
STEP_STATE_KINDS = ("dpo", "grpo")  # TRL 1.16 reads is_gradient_checkpointing at every step
RL_KINDS = ("dpo", "reward", "grpo")


def trl_members(subject: Subject, model: nn.Module, lm_path: str | None, trainer: str) -> dict[str, Any]:
    """What TRL's trainers read beyond Trainer, for the kinds that read it: ``base_model`` (the inner LM's
    backbone), ``is_gradient_checkpointing`` (computed over the wrapper's modules, as transformers does) and
    ``warnings_issued`` (the inner model's, where it has one: transformers 4.x)."""
    out: dict[str, Any] = {}
    lm = resolve(model, lm_path) if lm_path is not None else None
    if trainer in STEP_STATE_KINDS and _missing(subject, "is_gradient_checkpointing"):
        out["checkpointing_state"] = True
    if lm is None:
        return out
    if trainer in FUSED_HEAD_KINDS and _missing(subject, "base_model"):
        backbone = getattr(lm, "base_model", None)
        out["backbone"] = isinstance(backbone, nn.Module) and backbone is not lm
    if trainer in RL_KINDS and _missing(subject, "warnings_issued"):
        out["warnings_issued"] = isinstance(getattr(lm, "warnings_issued", None), dict)
    return out


def _missing(subject: Subject, name: str) -> bool:
    info = subject.member(name)
    return not info.present and info.provenance is not Provenance.BROKEN
