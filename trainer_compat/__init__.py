"""trainer-compat: check any torch.nn.Module against what Hugging Face Trainer expects of it."""

from __future__ import annotations

__version__ = "0.1.0"

from trainer_compat.checker import check
from trainer_compat.errors import TargetError, UsageError
from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Location, Severity
from trainer_compat.preflight import IncompatibleTrainerError, preflight
from trainer_compat.report import Report
from trainer_compat.shims import PatchResult, patch, unpatch

__all__ = ["Feature", "Finding", "IncompatibleTrainerError", "Location", "PatchResult", "Report", "Severity",
           "TargetError", "UsageError", "check", "patch", "preflight", "unpatch", "__version__"]
