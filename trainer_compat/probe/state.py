"""Leave no trace: snapshot everything a probe may touch, restore it, and prove it is back.

The model (its tensors bitwise, gradients, ``requires_grad``, structure, class, hooks, and the Python state in
every module's ``__dict__``: lists, dicts, configs, generation configs) and the process (every RNG stream,
torch's global flags, the environment, accelerate's shared state). Modules are walked through ``_modules``
and tensors read from ``_parameters``/``_buffers`` directly, so a user's override of ``named_parameters`` or
``named_modules`` (or one that raises) cannot hide or break anything here.
"""

from __future__ import annotations

import contextlib
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainer_compat.probe import pystate
from trainer_compat.probe.process import ProcessState, bitwise_equal, rng_state, set_rng_state

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_state_dict_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
               "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called",
               "_state_dict_pre_hooks")
_STRUCTURE = ("_parameters", "_buffers", "_modules", *_HOOK_DICTS)


def walk(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every (name, module), duplicates included, read from ``_modules`` (no user method is called)."""
    out: list[tuple[str, nn.Module]] = []
    stack: list[tuple[str, nn.Module, tuple[int, ...]]] = [("", model, ())]
    while stack:
        name, module, ancestors = stack.pop()
        out.append((name, module))
        children = vars(module).get("_modules") or {}
        for child_name, child in reversed(list(children.items())):
            if isinstance(child, nn.Module) and id(child) not in ancestors:
                stack.append((f"{name}.{child_name}" if name else child_name, child, (*ancestors, id(module))))
    return out


def named_tensors(model: nn.Module, slot: str) -> dict[str, torch.Tensor]:
    """``slot`` is "_parameters" or "_buffers": every tensor by its path, duplicates included."""
    out: dict[str, torch.Tensor] = {}
    for name, module in walk(model):
        for key, tensor in (vars(module).get(slot) or {}).items():
            if tensor is not None:
                out[f"{name}.{key}" if name else key] = tensor
    return out


def parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    return named_tensors(model, "_parameters")  # type: ignore[return-value]  # _parameters holds Parameters


def unique_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Each parameter once, under its first name: what ``named_parameters()`` yields, without calling it."""
    seen: set[int] = set()
    out = {}
    for name, param in parameters(model).items():
        if id(param) not in seen:
            seen.add(id(param))
            out[name] = param
    return out


def is_lazy(tensor: Any) -> bool:
    return isinstance(tensor, (nn.parameter.UninitializedParameter, nn.parameter.UninitializedBuffer))


@dataclass
class _ModuleRecord:
    module: nn.Module
    cls: type
    structure: dict[str, tuple[Any, dict[str, Any]]]  # slot -> (the dict object, its items as they were)
    attributes: dict[str, pystate.Node]


@dataclass
class ModelState:
    """Everything about a model, and the process around it, that a training step can change."""

    modules: dict[str, _ModuleRecord]
    tensors: dict[str, torch.Tensor | None]  # None: not copied (uninitialized, or a tensor that refuses)
    grads: dict[str, torch.Tensor | None]
    requires_grad: dict[str, bool]
    process: ProcessState = field(default_factory=ProcessState.capture)
    classes: dict[Any, dict[str, pystate.Node]] = field(default_factory=dict)  # user classes' and their modules'
    # data attributes (shared with every instance and other code: compared, not rolled back)
    unverified: list[str] = field(default_factory=list)  # what could not be snapshotted, hence not proven

    @classmethod
    def capture(cls, model: nn.Module) -> ModelState:
        budget = pystate.Budget()
        modules = {name: _record(module, budget) for name, module in walk(model)}
        params = parameters(model)
        tensors = {**{f"param:{k}": v for k, v in params.items()},
                   **{f"buffer:{k}": v for k, v in named_tensors(model, "_buffers").items()}}
        state = cls(modules=modules, tensors={}, grads={},
                    requires_grad={k: p.requires_grad for k, p in params.items()})
        state.tensors = {k: state._copy(k, v) for k, v in tensors.items()}
        state.grads = {k: None if p.grad is None else state._copy(f"grad of {k}", p.grad) for k, p in params.items()}
        owners: list[Any] = [c for c in dict.fromkeys(r.cls for r in modules.values()) if _user_class(c)]
        owners += [m for m in dict.fromkeys(sys.modules.get(c.__module__) for c in owners) if m is not None]
        state.classes = {owner: _shared_data(owner, budget) for owner in owners}
        if budget.nodes <= 0:
            state.unverified.append("Python attributes past the snapshot's size budget (compared by identity)")
        return state

    def _copy(self, key: str, tensor: torch.Tensor) -> torch.Tensor | None:
        if is_lazy(tensor):
            return None  # nothing to copy; the structure record puts the uninitialized parameter back
        try:
            return tensor.detach().clone()
        except Exception as exc:
            self.unverified.append(f"{key} ({type(tensor).__name__} cannot be copied: {type(exc).__name__})")
            return None

    def restore(self, model: nn.Module) -> None:
        for record in self.modules.values():
            _restore_module(record)
        params = parameters(model)
        live = {**{f"param:{k}": v for k, v in params.items()},
                **{f"buffer:{k}": v for k, v in named_tensors(model, "_buffers").items()}}
        with torch.no_grad():
            for key, saved in self.tensors.items():
                if saved is not None and key in live and not is_lazy(live[key]):
                    _put_back(live[key], saved)
        for key, param in params.items():
            if key in self.requires_grad and param.requires_grad != self.requires_grad[key]:
                param.requires_grad_(self.requires_grad[key])
            saved_grad = self.grads.get(key)
            param.grad = None if saved_grad is None else saved_grad.clone()
        self.process.restore()

    def differences(self, model: nn.Module) -> list[str]:
        """What differs between this snapshot and the model and process now (empty: as they were)."""
        diffs = self._module_differences(model)
        params = parameters(model)
        live = {**{f"param:{k}": v for k, v in params.items()},
                **{f"buffer:{k}": v for k, v in named_tensors(model, "_buffers").items()}}
        diffs += [f"new tensor {k}" for k in live if k not in self.tensors]
        for key, saved in self.tensors.items():
            if key not in live:
                diffs.append(f"tensor {key} removed")
            elif saved is not None and not _equal(live[key], saved, key, self.unverified):
                diffs.append(f"tensor {key}")
        for key, param in params.items():
            saved_grad, grad = self.grads.get(key), param.grad
            if (saved_grad is None) != (grad is None) or (
                    saved_grad is not None and grad is not None
                    and not _equal(grad, saved_grad, f"grad of {key}", self.unverified)):
                diffs.append(f"grad of {key}")
        if {k: p.requires_grad for k, p in params.items()} != self.requires_grad:
            diffs.append("requires_grad")
        return diffs + self.process.differences()

    def outside_differences(self) -> list[str]:
        """State outside the instance that the forward changed: class attributes shared by every instance and by
        other code. Reported, not rolled back."""
        diffs = []
        for owner, saved in self.classes.items():
            kind = "class attribute" if isinstance(owner, type) else "module global"
            name = owner.__qualname__ if isinstance(owner, type) else owner.__name__
            now = {k: v for k, v in vars(owner).items() if _is_data(k, v)}
            diffs += [f"{kind} {name}.{k} added" for k in now if k not in saved]
            for key, node in saved.items():
                shown = f"{name}.{key}"
                diffs += ([f"{kind} {shown} removed"] if key not in now else
                          [f"{kind} {d}" for d in pystate.differences(node, now[key], shown)])
        return diffs

    def _module_differences(self, model: nn.Module) -> list[str]:
        now = dict(walk(model))
        diffs = [f"module {k or '<model>'} added" for k in now if k not in self.modules]
        for name, record in self.modules.items():
            shown = name or "<model>"
            if now.get(name) is not record.module:
                diffs.append(f"module {shown} replaced")
                continue
            diffs.extend(_record_differences(record, shown))
        return diffs


def _record(module: nn.Module, budget: pystate.Budget) -> _ModuleRecord:
    state = vars(module)
    structure = {k: (state[k], dict(state[k])) for k in _STRUCTURE if isinstance(state.get(k), dict)}
    attributes = {k: pystate.snapshot(v, budget) for k, v in state.items() if k not in _STRUCTURE}
    return _ModuleRecord(module, type(module), structure, attributes)


def _user_class(cls: type) -> bool:
    root = (cls.__module__ or "").split(".")[0]
    return root not in pystate._FOREIGN and root not in ("transformers", "trainer_compat")


def _is_data(key: str, value: Any) -> bool:
    return not (key.startswith("__") or callable(value)
                or isinstance(value, (property, classmethod, staticmethod, types.ModuleType)))


def _shared_data(owner: Any, budget: pystate.Budget) -> dict[str, pystate.Node]:
    """A class's or a module's data attributes: what every instance, and other code, sees."""
    return {k: pystate.snapshot(v, budget) for k, v in vars(owner).items() if _is_data(k, v)}


def _restore_module(record: _ModuleRecord) -> None:
    module, state = record.module, vars(record.module)
    if type(module) is not record.cls:
        module.__class__ = record.cls  # a lazy module becomes its materialized class on first forward
    for slot, (holder, items) in record.structure.items():
        holder.clear()
        holder.update(items)
        state[slot] = holder
    for attr in [a for a in state if a not in _STRUCTURE and a not in record.attributes]:
        del state[attr]
    for attr, node in record.attributes.items():
        try:
            state[attr] = pystate.restore(node)
        except Exception:  # what stays different is reported by differences()
            state[attr] = node.value


def _record_differences(record: _ModuleRecord, shown: str) -> list[str]:
    module, state = record.module, vars(record.module)
    diffs = [] if type(module) is record.cls else [f"class of {shown}"]
    for slot, (holder, items) in record.structure.items():
        live = state.get(slot)
        if live is not holder or list(live) != list(items) or any(live[k] is not v for k, v in items.items()):
            diffs.append(f"{slot.strip('_')} of {shown}")
    extra = [a for a in state if a not in _STRUCTURE and a not in record.attributes]
    diffs.extend(f"attribute {shown}.{a} added" for a in extra)
    for attr, node in record.attributes.items():
        if attr not in state:
            diffs.append(f"attribute {shown}.{attr} removed")
        else:
            diffs.extend(f"attribute {d}" for d in pystate.differences(node, state[attr], f"{shown}.{attr}"))
    return diffs


def _put_back(live: torch.Tensor, saved: torch.Tensor) -> None:
    with contextlib.suppress(Exception):  # a tensor that refuses copy_ shows up in differences()
        live.copy_(saved)


def _equal(live: torch.Tensor, saved: torch.Tensor, key: str, unverified: list[str]) -> bool:
    try:
        return bitwise_equal(live, saved)
    except Exception as exc:
        unverified.append(f"{key} (cannot be compared: {type(exc).__name__})")
        return True


__all__ = ["ModelState", "ProcessState", "bitwise_equal", "is_lazy", "named_tensors", "parameters", "rng_state",
           "set_rng_state", "unique_parameters", "walk"]
