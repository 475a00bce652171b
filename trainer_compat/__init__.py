"""trainer-compat: check any torch.nn.Module against what Hugging Face Trainer expects of it.

The public API is imported on first use (PEP 562): ``import trainer_compat`` and ``trainer-compat --version``
import neither torch nor transformers; ``trainer_compat.check`` (or any other name below) imports what it needs.
"""

from __future__ import annotations

import sys as _sys

if _sys.argv[:1] == ["-m"] and _sys.path and _sys.path[0] in ("", __import__("os").getcwd()):
    del _sys.path[0]  # `python -m trainer_compat` from a user's folder: its typing.py or torch.py is not ours to import

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # type checkers and IDEs see the real names
    from trainer_compat.api import check
    from trainer_compat.errors import TargetError, UsageError
    from trainer_compat.features import Feature
    from trainer_compat.findings import Finding, Location, Severity
    from trainer_compat.report import Report
    from trainer_compat.shims import PatchResult, patch, unpatch
    from trainer_compat.trainer_check import IncompatibleTrainerError, preflight

# public name -> the module that defines it
_LAZY = {
    "check": "trainer_compat.api",
    "TargetError": "trainer_compat.errors",
    "UsageError": "trainer_compat.errors",
    "Feature": "trainer_compat.features",
    "Finding": "trainer_compat.findings",
    "Location": "trainer_compat.findings",
    "Severity": "trainer_compat.findings",
    "IncompatibleTrainerError": "trainer_compat.trainer_check",
    "preflight": "trainer_compat.trainer_check",
    "Report": "trainer_compat.report",
    "PatchResult": "trainer_compat.shims",
    "patch": "trainer_compat.shims",
    "unpatch": "trainer_compat.shims",
}

__all__ = [
    "Feature",
    "Finding",
    "IncompatibleTrainerError",
    "Location",
    "PatchResult",
    "Report",
    "Severity",
    "TargetError",
    "UsageError",
    "__version__",
    "check",
    "patch",
    "preflight",
    "unpatch",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
