"""Which Trainer the user's run builds: a kind (``trainer``, ``seq2seq``, ``sft``) or their own subclass.

A user's subclass (``class MyTrainer(Trainer)`` overriding ``compute_loss``, as LLaVA and most multimodal
fine-tuning repos do) changes what the model must provide; the probe and ``preflight`` run that class, and
the static rules ask ``TrainingSetup.overrides`` before demanding what only the stock methods need.
"""

from __future__ import annotations

import enum
from typing import Any

from trainer_compat import analysis
from trainer_compat.errors import TargetError, UsageError


class TrainerKind(str, enum.Enum):
    """The stock trainer a run builds (or its user subclass derives from): its arguments class and protocol."""

    TRAINER = "trainer"
    SEQ2SEQ = "seq2seq"
    SFT = "sft"  # TRL's SFTTrainer, and the DPO/Reward/GRPO trainers below
    DPO = "dpo"
    REWARD = "reward"
    GRPO = "grpo"

    def __str__(self) -> str:  # the value, as a plain str would print (Enum's is "Class.NAME")
        return str.__str__(self)

    def __format__(self, format_spec: str) -> str:
        return str.__format__(self, format_spec)


TRAINER_KINDS = tuple(k.value for k in TrainerKind)
TRL_KINDS = {TrainerKind.SFT: ("SFTTrainer", "SFTConfig"), TrainerKind.DPO: ("DPOTrainer", "DPOConfig"),
             TrainerKind.REWARD: ("RewardTrainer", "RewardConfig"), TrainerKind.GRPO: ("GRPOTrainer", "GRPOConfig")}


def is_trainer_spec(value: Any) -> bool:
    """A ``module:Name`` / ``path.py:Name`` naming a Trainer subclass, rather than a kind."""
    return isinstance(value, str) and ":" in value


def resolve_trainer(spec: Any) -> tuple[TrainerKind, type | None]:
    """``(kind, class)``: a kind name gives ``(kind, None)``; a class or a ``path:Name`` gives its kind and itself."""
    if spec is None:
        return TrainerKind.TRAINER, None
    if isinstance(spec, str) and not is_trainer_spec(spec):
        if spec not in TRAINER_KINDS:
            raise UsageError(f"--trainer: unknown trainer {spec!r} (choose from {', '.join(TRAINER_KINDS)}, "
                             "or name a Trainer subclass as module:Name or path/file.py:Name)")
        return TrainerKind(spec), None
    cls = _load(spec) if isinstance(spec, str) else spec
    if not isinstance(cls, type) or not analysis.is_trainer_class(cls):  # by name: --static's stand-ins count
        raise UsageError(f"--trainer: {_name(spec)} is not a transformers.Trainer subclass")
    return kind_of(cls), cls


def kind_of(cls: type) -> TrainerKind:
    """The stock trainer a class derives from: its arguments class and protocol (read from the names in its MRO,
    so a class rebuilt from source by ``--static`` gets the same answer as the imported one)."""
    for kind, (trainer_name, _) in TRL_KINDS.items():
        if analysis.derives_from(cls, "trl.", trainer_name):
            return kind
    seq2seq = analysis.derives_from(cls, "transformers.", "Seq2SeqTrainer")
    return TrainerKind.SEQ2SEQ if seq2seq else TrainerKind.TRAINER


def stock_class(kind: str) -> type:
    import transformers

    if kind in TRL_KINDS:
        import trl

        return getattr(trl, TRL_KINDS[TrainerKind(kind)][0])
    return transformers.Seq2SeqTrainer if kind == "seq2seq" else transformers.Trainer


def overrides(cls: type | None, kind: str, method: str) -> bool:
    """True when the user's class replaces ``method`` of the stock trainer it derives from."""
    if cls is None:
        return False
    owner = analysis.owner_of(cls, method)
    stock = ("transformers.", "trl.") if kind in TRL_KINDS else ("transformers.",)
    return owner is not None and not (owner.__module__ or "").startswith(stock)


def _load(spec: str) -> Any:
    from trainer_compat.targets import load_target

    try:
        return load_target(spec)
    except TargetError as exc:
        raise UsageError(f"--trainer: {exc}") from exc


def _name(spec: Any) -> str:
    return spec if isinstance(spec, str) else getattr(spec, "__qualname__", type(spec).__name__)
