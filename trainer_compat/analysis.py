"""Shared analysis of models and classes, for rules, shims and the probe alike.

Every question here is answered without importing torch or transformers: a class is recognised by the
module and name of the classes in its MRO, and an object can only be a torch module once torch is loaded.
So the same helpers serve a built model and ``--static``'s stand-in classes (rebuilt from source, never
imported), and the checks that need no instance stay as light as ``ruff``.
"""

from __future__ import annotations

import sys
from typing import Any

# The packages whose classes are library code, not the user's (their members are "inherited from" them).
LIBRARY_PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "deepspeed")


def torch_loaded() -> bool:
    return "torch" in sys.modules


def is_module(obj: object) -> bool:
    """An ``nn.Module`` instance (no torch loaded: nothing can be one)."""
    if not torch_loaded():
        return False
    import torch.nn as nn

    return isinstance(obj, nn.Module)


def _mro(obj: object) -> tuple[type, ...]:
    klass = obj if isinstance(obj, type) else type(obj)
    try:
        return klass.__mro__
    except AttributeError:  # pragma: no cover - every class has one
        return ()


def derives_from(obj: object, module_prefix: str, *names: str) -> bool:
    """``obj`` (a class or an instance) has a class named one of ``names`` from ``module_prefix`` in its MRO:
    true for the real library class and for ``--static``'s stand-in rebuilt from its source."""
    return any(k.__name__ in names and (k.__module__ or "").startswith(module_prefix) for k in _mro(obj))


def is_pretrained(obj: object) -> bool:
    """A transformers ``PreTrainedModel`` (class or instance)."""
    return derives_from(obj, "transformers.", "PreTrainedModel")


def is_peft_model(obj: object) -> bool:
    return derives_from(obj, "peft.", "PeftModel", "PeftMixedModel")


def is_torch_module_class(klass: type) -> bool:
    """``torch.nn.Module`` itself (the real one or its stand-in)."""
    return klass.__name__ == "Module" and klass.__module__ in ("torch.nn.modules.module", "torch.nn")


def library_class(klass: type) -> bool:
    """A class of one of the libraries Trainer's protocol comes from, not of the user's project."""
    return (klass.__module__ or "").split(".")[0] in LIBRARY_PACKAGES


def is_trainer_class(obj: object) -> bool:
    return derives_from(obj, "transformers.", "Trainer")


def owner_of(klass: type, name: str) -> type | None:
    """The class of ``klass``'s MRO whose own namespace defines ``name``."""
    for k in _mro(klass):
        if name in vars(k):
            return k
    return None


def inner_pretrained(model: Any) -> list[tuple[str, Any]]:
    """The outermost PreTrainedModel submodules of ``model`` (one inside another is its own business)."""
    if not is_module(model):
        return []
    found = [(n, m) for n, m in model.named_modules() if n and is_pretrained(m)]
    return [(n, m) for n, m in found if not any(n.startswith(o + ".") for o, _ in found if o != n)]
