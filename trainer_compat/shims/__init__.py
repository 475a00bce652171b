"""Shims that make a wrapper Trainer-compatible by delegating to the models inside it.

``patch(model)`` repairs one instance at run time (``unpatch`` undoes it); ``trainer-compat fix`` writes the same
shims into the wrapper's source. See docs/shims.md. The names below are imported on first use (PEP 562), so the
command line can build its ``fix`` parser without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer_compat.shims.plan import Plan
    from trainer_compat.shims.result import PatchResult
    from trainer_compat.shims.runtime import is_patched, patch, unpatch

_LAZY = {"Plan": "trainer_compat.shims.plan", "PatchResult": "trainer_compat.shims.result",
         "is_patched": "trainer_compat.shims.runtime", "patch": "trainer_compat.shims.runtime",
         "unpatch": "trainer_compat.shims.runtime"}

__all__ = ["PatchResult", "Plan", "is_patched", "patch", "unpatch"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
