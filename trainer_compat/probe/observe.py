"""What happens inside one real training step: which modules ran, which re-ran in backward, which grads came."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainer_compat.probe.state import is_lazy, unique_parameters, walk


def _in_backward() -> bool:
    return torch._C._current_graph_task_id() != -1


@dataclass
class StepObservations:
    forward_calls: Counter[str] = field(default_factory=Counter)  # module name -> calls outside backward
    recomputed: Counter[str] = field(default_factory=Counter)  # module name -> calls during backward
    grad_norms: dict[str, float] = field(default_factory=dict)  # parameter name -> sum of grad norms seen
    final_grad_sq: dict[str, float] = field(default_factory=dict)  # parameter name -> |grad|^2 after the last
    # accumulation, i.e. what the optimizer step (before clipping) is given
    losses: list[Any] = field(default_factory=list)  # what compute_loss returned, per micro-batch

    @property
    def accumulated_grad_norm(self) -> float:
        return sum(self.final_grad_sq.values()) ** 0.5

    @property
    def ran(self) -> set[str]:
        return set(self.forward_calls)


@contextmanager
def observe(model: nn.Module) -> Iterator[StepObservations]:
    """Hooks on every module and trainable parameter, removed in ``finally`` whatever happens."""
    seen = StepObservations()
    handles: list[Any] = []
    try:
        for name, module in _unique(dict(walk(model))).items():  # named_modules() may be the user's, may raise
            handles.append(module.register_forward_pre_hook(_counter(seen, name)))
        for name, param in unique_parameters(model).items():
            if param.requires_grad and not is_lazy(param):  # a lazy one takes no hook before it materializes
                handles.append(param.register_post_accumulate_grad_hook(_grad_recorder(seen, name)))
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _unique(named: dict[str, Any]) -> dict[str, Any]:
    """The first name of each object, as named_modules() and named_parameters() give them."""
    seen: set[int] = set()
    out = {}
    for name, value in named.items():
        if id(value) not in seen:
            seen.add(id(value))
            out[name] = value
    return out


def _counter(seen: StepObservations, name: str) -> Any:
    def hook(module: nn.Module, args: Any) -> None:
        (seen.recomputed if _in_backward() else seen.forward_calls)[name] += 1

    return hook


def _grad_recorder(seen: StepObservations, name: str) -> Any:
    def hook(param: torch.Tensor) -> None:
        if param.grad is not None:
            norm = float(param.grad.detach().float().norm())
            seen.grad_norms[name] = seen.grad_norms.get(name, 0.0) + norm
            seen.final_grad_sq[name] = norm * norm

    return hook
