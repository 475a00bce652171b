"""Shims that make a wrapper Trainer-compatible by delegating to the models inside it.

``patch(model)`` repairs one instance at run time (``unpatch`` undoes it); ``trainer-compat fix`` writes the same
shims into the wrapper's source. See docs/shims.md.
"""

from __future__ import annotations

from trainer_compat.shims.plan import Plan
from trainer_compat.shims.result import PatchResult
from trainer_compat.shims.runtime import is_patched, patch, unpatch

__all__ = ["PatchResult", "Plan", "is_patched", "patch", "unpatch"]
