"""Delegation discovery: which object inside a wrapper really implements each member a shim needs.

Submodules are walked through ``_modules`` only (never ``getattr``: a wrapper's ``__getattr__`` may recurse),
under any attribute name, through nested user wrappers, torch.compile and PEFT. Checkpointing goes to every
outermost sub-model that can carry it; embeddings, generation and config go to the one language model.
"""

from __future__ import annotations

import ast
import re
import weakref
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeGuard

from trainer_compat import analysis
from trainer_compat.signature import submodule_called, unwrap_compiled
from trainer_compat.subject import parse_function

if TYPE_CHECKING:
    from peft import PeftMixedModel, PeftModel
    from torch import nn
    from transformers import PreTrainedModel

_LIBRARIES = ("torch", "transformers", "peft", "trl", "accelerate")


def children(module: nn.Module) -> dict[str, nn.Module]:
    return dict(vars(module).get("_modules") or {})


def resolve(model: nn.Module, path: str) -> nn.Module:
    """``model.a.b`` through ``_modules`` only; ``AttributeError`` naming the missing link."""
    module = model
    for part in path.split(".") if path else ():
        nxt = children(module).get(part)
        if nxt is None:
            raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (delegate path {path!r})")
        module = nxt
    return module


def is_pretrained(module: nn.Module) -> TypeGuard[PreTrainedModel]:
    return analysis.is_pretrained(module)


def is_peft(module: nn.Module) -> TypeGuard[PeftModel | PeftMixedModel]:
    return analysis.is_peft_model(module)


def user_defines(module: nn.Module, name: str) -> bool:
    """``name`` is defined by a class of the user's (not torch / transformers / peft)."""
    for klass in type(module).__mro__:
        if name in vars(klass):
            return klass.__module__.split(".")[0] not in _LIBRARIES
    return False


def can_checkpoint(module: nn.Module) -> bool:
    if is_peft(module):
        return analysis.can_checkpoint(module.get_base_model())
    if is_pretrained(module):
        return analysis.can_checkpoint(module)
    return user_defines(module, "gradient_checkpointing_enable")


def is_language_model(module: nn.Module) -> bool:
    if is_peft(module):
        return is_language_model(module.get_base_model())
    if not is_pretrained(module):
        return False
    try:
        return bool(module.can_generate()) or module.get_output_embeddings() is not None
    except Exception:  # a model whose accessors raise is no delegate
        return False


def _walk(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Outermost models below ``module``: PreTrainedModels and PEFT models are leaves; user wrappers are entered."""
    for name, found in children(module).items():
        path = f"{prefix}.{name}" if prefix else name
        child = unwrap_compiled(found)
        if child is not found:
            path = f"{path}._orig_mod"
        if is_pretrained(child) or is_peft(child):
            yield path, child
            continue
        yield path, child
        yield from _walk(child, path)


@dataclass
class Delegates:
    checkpointing: list[str] = field(default_factory=list)
    lm: str | None = None
    models: list[str] = field(default_factory=list)  # every PreTrainedModel / PEFT model (for _no_split_modules)
    ambiguous: list[str] = field(default_factory=list)  # the candidates when no single LM could be chosen


def discover(model: nn.Module, delegate_to: str | None = None) -> Delegates:
    found = Delegates()
    walked = list(_walk(model))
    models = [(p, m) for p, m in walked if is_pretrained(m) or is_peft(m)]
    found.models = [p for p, _ in models]
    covered: list[str] = []
    for path, module in walked:
        if any(path.startswith(c + ".") for c in covered) or not can_checkpoint(module):
            continue
        found.checkpointing.append(path)
        covered.append(path)
    if delegate_to is not None:
        resolve(model, delegate_to)
        found.lm = delegate_to
        return found
    found.lm, found.ambiguous = _choose_lm(model, [(p, m) for p, m in models if is_language_model(m)] or models)
    return found


def _choose_lm(model: nn.Module, candidates: Sequence[tuple[str, nn.Module]]) -> tuple[str | None, list[str]]:
    if len(candidates) == 1:
        return candidates[0][0], []
    if not candidates:
        return None, []
    called = forward_target(model)
    if called is not None and any(p == called for p, _ in candidates):
        return called, []
    return None, [p for p, _ in candidates]


def forward_target(model: nn.Module) -> str | None:
    """The submodule path whose call the wrapper's forward returns (``return self.model(**kwargs)``)."""
    node = parse_function(type(model).forward)
    if node is None:
        return None
    for sub in ast.walk(node):
        if isinstance(sub, ast.Return) and isinstance(sub.value, ast.Call):
            target = submodule_called(sub.value.func, model)
            if target is not None:
                return _path_of(model, target)
    return None


def _path_of(model: nn.Module, target: nn.Module) -> str | None:
    return next((n for n, m in model.named_modules() if m is target and n), None)


_INNER = re.compile(r"\bself\.model\b(?!\s*=)")
_NAMED: weakref.WeakKeyDictionary[nn.Module, str | None] = weakref.WeakKeyDictionary()


def inner_attribute(model: nn.Module | None) -> str | None:
    """The submodule path ``patch(model)`` delegates the language-model members to (``lm``, ``language_model``), or
    the one checkpointing carrier when there is no language model; None when there is none or the choice is open."""
    if model is None or is_pretrained(model) or is_peft(model):
        return None
    try:
        return _NAMED[model]
    except (KeyError, TypeError):
        pass
    try:
        found = discover(model)
        path = found.lm or (found.checkpointing[0] if len(found.checkpointing) == 1 else None)
    except Exception:  # a wrapper whose tree or forward cannot be read: the texts stay generic
        path = None
    with suppress(TypeError):
        _NAMED[model] = path
    return path


def name_inner(text: str | None, model: nn.Module | None) -> str | None:
    """A fix text with the generic ``self.model`` replaced by the wrapper's real inner attribute."""
    if not text or "self.model" not in text:
        return text
    path = inner_attribute(model)
    return text if path in (None, "model") else _INNER.sub(f"self.{path}", text)
