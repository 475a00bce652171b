"""Leave no trace: snapshot everything a probe may touch, restore it, and prove it is bitwise back."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_state_dict_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
               "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called",
               "_state_dict_pre_hooks")
_STRUCTURE = ("_parameters", "_buffers", "_modules", *_HOOK_DICTS)


def _attributes(module: nn.Module) -> dict[str, Any]:
    """A module's own attributes (flags, a wrapped forward, accelerate hooks), structure excluded."""
    return {k: v for k, v in module.__dict__.items() if k not in _STRUCTURE}


@dataclass
class ModelState:
    """Everything about a model that training can change, copied to host memory."""

    tensors: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor | None]
    requires_grad: dict[str, bool]
    attributes: dict[str, dict[str, Any]]
    hooks: dict[str, dict[str, dict[int, Any]]]
    config: dict[str, Any] | None
    rng: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def capture(cls, model: nn.Module) -> ModelState:
        named = dict(model.named_modules(remove_duplicate=False))
        return cls(
            tensors={k: v.detach().clone() for k, v in _tensors(model).items()},
            grads={k: None if p.grad is None else p.grad.detach().clone()
                   for k, p in model.named_parameters(remove_duplicate=False)},
            requires_grad={k: p.requires_grad for k, p in model.named_parameters(remove_duplicate=False)},
            attributes={k: _attributes(m) for k, m in named.items()},
            hooks={k: {h: dict(getattr(m, h)) for h in _HOOK_DICTS if hasattr(m, h)} for k, m in named.items()},
            config=_config_state(model),
            rng=_rng_state(),
        )

    def restore(self, model: nn.Module) -> None:
        named = dict(model.named_modules(remove_duplicate=False))
        tensors = _tensors(model)
        with torch.no_grad():
            for key, saved in self.tensors.items():
                if key in tensors:
                    tensors[key].copy_(saved)
        for key, param in model.named_parameters(remove_duplicate=False):
            param.requires_grad_(self.requires_grad.get(key, param.requires_grad))
            saved_grad = self.grads.get(key)
            param.grad = None if saved_grad is None else saved_grad.clone()
        for key, module in named.items():
            saved_attributes = self.attributes.get(key, {})
            for attr in [a for a in _attributes(module) if a not in saved_attributes]:
                del module.__dict__[attr]
            module.__dict__.update(saved_attributes)
            for hook_name, saved_hooks in self.hooks.get(key, {}).items():
                live = getattr(module, hook_name)
                for hook_id in [i for i in live if i not in saved_hooks]:
                    del live[hook_id]
        _restore_config(model, self.config)
        _restore_rng(self.rng)

    def differences(self, model: nn.Module) -> list[str]:
        """What differs between this snapshot and the model now (empty: bitwise identical)."""
        now = ModelState.capture(model)
        diffs = []
        for key, saved in self.tensors.items():
            current = now.tensors.get(key)
            if current is None or not bitwise_equal(current, saved):
                diffs.append(f"tensor {key}")
        diffs.extend(f"new tensor {key}" for key in now.tensors if key not in self.tensors)
        for key, saved_grad in self.grads.items():
            current_grad = now.grads.get(key)
            if (saved_grad is None) != (current_grad is None) or (
                    saved_grad is not None and not bitwise_equal(saved_grad, current_grad)):
                diffs.append(f"grad of {key}")
        for name in ("requires_grad", "config"):
            if getattr(self, name) != getattr(now, name):
                diffs.append(name)
        for key, saved_attributes in self.attributes.items():
            current = now.attributes.get(key, {})
            changed = sorted(a for a in set(saved_attributes) | set(current)
                             if a not in current or a not in saved_attributes
                             or not _same(current[a], saved_attributes[a]))
            diffs.extend(f"attribute {key or '<model>'}.{a}" for a in changed)
        if {k: {h: list(d) for h, d in v.items()} for k, v in self.hooks.items()} != \
                {k: {h: list(d) for h, d in v.items()} for k, v in now.hooks.items()}:
            diffs.append("hooks")
        if not _rng_equal(self.rng, now.rng):
            diffs.append("RNG state")
        return diffs


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape or a.device != b.device:
        return False
    if a.device.type == "meta" or a.numel() == 0:
        return True
    return torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # tensors, arrays: identity was the question
        return False


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, param in model.named_parameters(remove_duplicate=False):
        out[f"param:{key}"] = param
    for key, buf in model.named_buffers(remove_duplicate=False):
        if buf is not None:
            out[f"buffer:{key}"] = buf
    return out


def _config_state(model: nn.Module) -> dict[str, Any] | None:
    configs = {}
    for name, module in model.named_modules():
        config = module.__dict__.get("config")
        if config is not None and hasattr(config, "__dict__"):
            configs[name] = {k: v for k, v in vars(config).items()
                             if isinstance(v, (bool, int, float, str, type(None)))}
    return configs or None


def _restore_config(model: nn.Module, saved: dict[str, Any] | None) -> None:
    modules = dict(model.named_modules())  # not get_submodule: it probes a user's __getattr__ with hasattr
    for name, values in (saved or {}).items():
        config = modules[name].__dict__.get("config") if name in modules else None
        if config is None:
            continue
        for key, value in values.items():
            config.__dict__[key] = value
        for key in [k for k, v in vars(config).items()
                    if isinstance(v, (bool, int, float, str, type(None))) and k not in values]:
            del config.__dict__[key]


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:
        pass
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _rng_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys() or a["python"] != b["python"] or not torch.equal(a["torch"], b["torch"]):
        return False
    if "numpy" in a:
        (ka, sa, pa, ha, ga), (kb, sb, pb, hb, gb) = a["numpy"], b["numpy"]
        if ka != kb or not (sa == sb).all() or (pa, ha, ga) != (pb, hb, gb):
            return False
    return all(torch.equal(x, y) for x, y in zip(a.get("cuda", []), b.get("cuda", [])))
