"""Every rule, in code order."""

from __future__ import annotations

from trainer_compat.rules.base import Context, Example, Rule
from trainer_compat.rules.checkpointing import CheckpointingNotCarried, CheckpointingShimMayFake
from trainer_compat.rules.config import ConfigContract
from trainer_compat.rules.delegation import BrokenLookup, ShadowingWrite
from trainer_compat.rules.forward import ColumnsDropped, LossKwargsIgnored, LossMissingFromOutput, NoLabelNames
from trainer_compat.rules.frozen_inputs import CheckpointingFrozenInputs
from trainer_compat.rules.generation import GenerationContract
from trainer_compat.rules.peft import PeftForwardKwargs, PeftTargetModulesUnknown, PeftTaskNeedsGeneration
from trainer_compat.rules.presence import IncompatibleSignature, MissingMember
from trainer_compat.rules.probe import (
    CheckpointingIneffective,
    InvalidLoss,
    LossScaledByAccumulation,
    MissingGradients,
    NoEvalLoss,
    PhaseFailed,
    ProbeLeftTrace,
    ProbeSkipped,
    ReloadMismatch,
)
from trainer_compat.rules.saving import ReloadWithoutTieWeights, UnsafeStateDict

ALL_RULES: tuple[type[Rule], ...] = tuple(sorted(
    (MissingMember, IncompatibleSignature, BrokenLookup, ShadowingWrite, ColumnsDropped, NoLabelNames,
     LossKwargsIgnored, LossMissingFromOutput, ConfigContract, UnsafeStateDict, CheckpointingNotCarried,
     CheckpointingShimMayFake, GenerationContract, ReloadWithoutTieWeights, ProbeSkipped, PhaseFailed, InvalidLoss,
     MissingGradients, CheckpointingIneffective, LossScaledByAccumulation, ReloadMismatch, NoEvalLoss,
     ProbeLeftTrace, PeftTaskNeedsGeneration, PeftForwardKwargs, PeftTargetModulesUnknown, CheckpointingFrozenInputs),
    key=lambda r: r.code,
))


def rule_by_code(code: str) -> type[Rule]:
    for rule in ALL_RULES:
        if rule.code == code.upper():
            return rule
    raise KeyError(code)


__all__ = ["ALL_RULES", "Context", "Example", "Rule", "rule_by_code"]
