"""``patch(model)``: give one instance the shims it needs, as a per-instance subclass; ``unpatch`` swaps it back.

The instance's ``__dict__`` (parameters, buffers, submodules, hooks) is never touched: only ``__class__`` changes,
so state-dict keys stay as they were. A patched instance pickles (and deep-copies) as its original class plus the
Plan, and is patched again when it is loaded.
"""

from __future__ import annotations

import threading
from typing import Any

from torch import nn

from trainer_compat.shims.members import module_class, namespace
from trainer_compat.shims.plan import Plan, make_plan
from trainer_compat.shims.result import PatchResult

_CLASSES: dict[Plan, type] = {}
_LOCK = threading.Lock()


def original_class(model: nn.Module) -> type:
    return vars(type(model)).get("__trainer_compat_plan__", None).original if is_patched(model) else type(model)


def is_patched(model: Any) -> bool:
    return "__trainer_compat_plan__" in vars(type(model))


def plan_of(model: nn.Module) -> Plan | None:
    return vars(type(model)).get("__trainer_compat_plan__")


def patched_class(plan: Plan) -> type:
    """One class per Plan (shared by every instance patched the same way), named like the original."""
    with _LOCK:
        if plan not in _CLASSES:
            original = plan.original
            ns = namespace(plan)
            ns.update(__trainer_compat_plan__=plan, __reduce_ex__=_reduce_ex, __module__=original.__module__,
                      __qualname__=original.__qualname__,
                      __doc__=f"{original.__doc__ or ''}\n\n(patched by trainer-compat: {', '.join(plan.members)})")
            _CLASSES[plan] = type(original.__name__, (original,), ns)
        return _CLASSES[plan]


def _reduce_ex(self: nn.Module, protocol: int) -> tuple[Any, ...]:
    plan = plan_of(self)
    assert plan is not None
    return _restore, (plan, _state(self))


def _state(model: nn.Module) -> dict[str, Any]:
    getstate = getattr(model, "__getstate__", None)
    state = getstate() if getstate is not None else None
    return dict(state if isinstance(state, dict) else vars(model))


def _restore(plan: Plan, state: dict[str, Any]) -> nn.Module:
    """Unpickling: an instance of the original class with its state, patched again with the same Plan."""
    original = module_class(plan)
    model = original.__new__(original)
    setstate = getattr(model, "__setstate__", None)
    if setstate is not None:
        setstate(state)
    else:
        vars(model).update(state)
    model.__class__ = patched_class(plan)
    return model


def patch(model: nn.Module, args: Any = None, delegate_to: str | None = None, *, trainer: str = "trainer",
          probe: bool = False, sample: Any = None) -> PatchResult:
    """Give ``model`` (this instance only) the shims it needs; re-check it, and say what is fixed and what is left.

    ``args``: TrainingArguments or a dict of its fields, for the checks before and after. ``delegate_to``: the
    submodule path of the language model when several could serve. ``trainer``: a kind (``dpo``, ``grpo``, ...) or
    a Trainer subclass; TRL's trainers get the members they read beyond Trainer's. Idempotent; undone by
    ``unpatch``.
    """
    from trainer_compat.api import check
    from trainer_compat.trainer_class import resolve_trainer

    if not isinstance(model, nn.Module):
        raise TypeError(f"patch() takes a torch.nn.Module instance, not {type(model).__name__}")
    kind = resolve_trainer(trainer)[0]  # TRL's kinds read more of the model (shims/trl_members.py)
    inner, path = patch_target(model)
    if inner is not model:
        return _patch_inside(model, inner, path, args, delegate_to, trainer=trainer, probe=probe, sample=sample)
    previous = plan_of(model)
    original = original_class(model)
    model.__class__ = original  # decide on the original class, as if it had never been patched
    try:
        before = check(model, args=args, trainer=trainer)
        plan, notes = make_plan(model, original, delegate_to, trainer=kind)
    except BaseException:
        if previous is not None:
            model.__class__ = patched_class(previous)
        raise
    if plan.members:
        model.__class__ = patched_class(plan)
    after = check(model, args=args, trainer=trainer, probe=probe, sample=sample)
    return PatchResult(model=model, plan=plan, notes=notes, before=before, after=after,
                       unchanged=previous == plan)


def patch_target(model: nn.Module) -> tuple[nn.Module, str]:
    """The module whose class gets the shims: a PeftModel's base model, a torch.compile wrapper's module
    (both reach it through their own ``__getattr__``), else ``model`` itself."""
    from trainer_compat.shims.discover import is_peft
    from trainer_compat.signature import unwrap_compiled

    if is_peft(model):
        return model.get_base_model(), "get_base_model()"
    inner = unwrap_compiled(model)
    return (inner, "_orig_mod") if inner is not model else (model, "")


def _patch_inside(model: nn.Module, inner: nn.Module, path: str, args: Any, delegate_to: str | None,
                  **options: Any) -> PatchResult:
    """Patch the module inside a PeftModel / compiled model; check the outer one, which Trainer gets."""
    from trainer_compat.api import check

    trainer = options.pop("trainer")
    before = check(model, args=args, trainer=trainer)
    result = patch(inner, args, delegate_to, trainer=trainer)
    result.notes.inside = f"{type(inner).__name__} ({type(model).__name__}.{path})"
    after = check(model, args=args, trainer=trainer, **options)
    return PatchResult(model=model, plan=result.plan, notes=result.notes, before=before, after=after,
                       unchanged=result.unchanged)


def unpatch(model: nn.Module) -> nn.Module:
    """Swap the original class back (a no-op on an unpatched model); returns the model."""
    inner, _ = patch_target(model)
    inner.__class__ = original_class(inner)
    return model
