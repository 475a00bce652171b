"""Python-side state a forward can change: lists, dicts and sets it appends to, config objects it writes, plain
tensors held as attributes. Snapshotted deeply enough to be put back in place (the same objects, so every other
reference to them sees the old contents again) and compared without calling user code (no ``__eq__`` of theirs).

What the snapshot does not descend into (library objects, numpy arrays, objects past the depth or size budget) is
held by identity: rebinding it is undone, mutating it in place is neither seen nor undone.
"""

from __future__ import annotations

import enum
import types
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

_ATOMS = (bool, int, float, complex, str, bytes, type(None), range, slice, torch.dtype, torch.device)
_OPAQUE = (nn.Module, type, types.ModuleType, types.FunctionType, types.MethodType, types.BuiltinFunctionType)
_FOREIGN = frozenset({"torch", "numpy", "accelerate", "safetensors", "datasets", "tokenizers", "peft", "trl",
                      "deepspeed", "builtins", "functools", "weakref", "threading", "logging", "collections"})
_MAX_DEPTH = 6
_MAX_NODES = 50_000
_MAX_TENSOR_BYTES = 64 << 20  # plain tensor attributes copied for comparison up to this size in all


@dataclass
class Node:
    """One value as it was: ``kind`` says how its contents were kept (``ref``: by identity only)."""

    kind: str  # atom | ref | list | tuple | dict | set | object | tensor
    value: Any
    parts: Any = None


@dataclass
class Budget:
    nodes: int = _MAX_NODES
    tensor_bytes: int = _MAX_TENSOR_BYTES
    memo: dict[int, Node] = field(default_factory=dict)


def snapshot(value: Any, budget: Budget, depth: int = 0) -> Node:
    if isinstance(value, _ATOMS) and type(value) in _ATOMS:
        return Node("atom", value)
    known = budget.memo.get(id(value))
    if known is not None:
        return known  # shared (a config every layer holds) or cyclic: one node, restored once
    budget.nodes -= 1
    if budget.nodes <= 0 or depth > _MAX_DEPTH or isinstance(value, (_OPAQUE, enum.Enum)):
        return Node("ref", value)
    node = _container(value, budget, depth)
    budget.memo[id(value)] = node
    return node


def _container(value: Any, budget: Budget, depth: int) -> Node:
    kind = type(value)
    if kind is list or kind is tuple:
        node = Node(kind.__name__, value)
        budget.memo[id(value)] = node
        node.parts = [snapshot(v, budget, depth + 1) for v in value]
        return node
    if kind is dict:
        node = Node("dict", value)
        budget.memo[id(value)] = node
        node.parts = [(k, snapshot(v, budget, depth + 1)) for k, v in value.items()]
        return node
    if kind is set:
        return Node("set", value, set(value))
    if isinstance(value, torch.Tensor):
        return _tensor(value, budget)
    if _descends(value):
        node = Node("object", value)
        budget.memo[id(value)] = node
        node.parts = snapshot(vars(value), budget, depth + 1)
        return node
    return Node("ref", value)


def _tensor(value: torch.Tensor, budget: Budget) -> Node:
    try:
        if value.layout != torch.strided or value.is_quantized or value.device.type == "meta":
            return Node("ref", value)
        size = value.numel() * value.element_size()
        if size > budget.tensor_bytes:
            return Node("ref", value)
        budget.tensor_bytes -= size
        return Node("tensor", value, value.detach().clone())
    except Exception:  # an uninitialized parameter, a tensor subclass that refuses: identity only
        return Node("ref", value)


def _descends(value: Any) -> bool:
    """A plain object whose attributes are its state: a config, a generation config, a user's own object."""
    state = getattr(value, "__dict__", None)
    if type(state) is not dict or isinstance(value, _OPAQUE):
        return False
    root = (type(value).__module__ or "").split(".")[0]
    return root not in _FOREIGN


def restore(node: Node) -> Any:
    """Put the contents back in place; return the object to rebind."""
    if node.kind in ("atom", "ref"):
        return node.value
    if node.kind == "list":
        node.value[:] = [restore(p) for p in node.parts]
    elif node.kind == "tuple":
        for part in node.parts:
            restore(part)
    elif node.kind == "dict":
        contents = [(k, restore(p)) for k, p in node.parts]
        node.value.clear()
        node.value.update(contents)
    elif node.kind == "set":
        node.value.clear()
        node.value.update(node.parts)
    elif node.kind == "object":
        restore(node.parts)
    elif node.kind == "tensor":
        _restore_tensor(node.value, node.parts)
    return node.value


def _restore_tensor(live: torch.Tensor, saved: torch.Tensor) -> None:
    with torch.no_grad():
        if live.shape != saved.shape:
            live.resize_(saved.shape)
        live.copy_(saved)


def differences(node: Node, live: Any, path: str, seen: set[int] | None = None) -> list[str]:
    """Where ``live`` differs from the snapshot (paths), comparing contents without user code."""
    seen = set() if seen is None else seen
    if node.kind == "atom":
        same = type(live) is type(node.value) and (live is node.value or live == node.value)
        return [] if same else [path]
    if live is not node.value:
        return [path]
    if node.kind == "ref" or id(node) in seen:
        return []
    seen.add(id(node))
    return _content_differences(node, live, path, seen)


def _content_differences(node: Node, live: Any, path: str, seen: set[int]) -> list[str]:
    if node.kind in ("list", "tuple", "dict"):
        return _item_differences(node, live, path, seen)
    if node.kind == "set":
        return [] if len(live) == len(node.parts) and all(v in node.parts for v in live) else [path]
    if node.kind == "object":
        return _object_differences(node.parts, vars(live), path, seen)
    if node.kind == "tensor":
        from trainer_compat.probe.process import bitwise_equal

        return [] if bitwise_equal(live, node.parts) else [path]
    return []


def _item_differences(node: Node, live: Any, path: str, seen: set[int]) -> list[str]:
    """A list's, tuple's or dict's items against their saved pictures; the path itself when its length or keys moved."""
    if node.kind == "dict":
        if list(live) != [k for k, _ in node.parts]:
            return [path]
        return [d for k, p in node.parts for d in differences(p, live[k], f"{path}[{k!r}]", seen)]
    if len(live) != len(node.parts):
        return [path]
    return [d for i, p in enumerate(node.parts) for d in differences(p, live[i], f"{path}[{i}]", seen)]


def _object_differences(node: Node, state: dict[str, Any], path: str, seen: set[int]) -> list[str]:
    if state is not node.value:
        return [path]
    if list(state) != [k for k, _ in node.parts]:
        added = [k for k in state if k not in dict(node.parts)]
        gone = [k for k, _ in node.parts if k not in state]
        return [f"{path}.{k}" for k in (*added, *gone)] or [path]
    return [d for k, p in node.parts for d in differences(p, state[k], f"{path}.{k}", seen)]
