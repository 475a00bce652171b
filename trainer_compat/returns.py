"""What a forward visibly returns, read from its source: the shapes Trainer's compute_loss cares about.

Trainer takes ``outputs["loss"]`` from a dict (a ModelOutput is one) and ``outputs[0]`` from anything else; its label
smoother takes ``outputs["logits"]`` / ``outputs[0]`` as the logits. Only what the source shows for certain is
classified: a name or attribute called ``loss`` / ``*_loss`` (a scalar loss), ``logits`` / ``*_logits`` (a logits
tensor), a functional loss call (``F.cross_entropy(...)``), tuple and dict literals. Everything else is "other".
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from trainer_compat.signature import function_first_line
from trainer_compat.subject import parse_function

LOSS, LOGITS, NONE, TUPLE, DICT, OTHER = "loss", "logits", "none", "tuple", "dict", "other"
_LOSS_CALLS = frozenset({"cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
                         "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div"})


@dataclass(frozen=True)
class Returned:
    """One ``return`` of the forward: its kind, its first element's kind (a tuple), its keys (a dict literal)."""

    kind: str
    text: str
    line: int  # in the forward's file
    first: str | None = None  # a tuple: the kind of element 0
    keys: frozenset[str] | None = None  # a dict literal: its constant keys (None when it unpacks **another)


def forward_returns(function: Any) -> list[Returned] | None:
    """Every ``return`` with a value in ``function`` (nested functions and lambdas excluded); None without source."""
    node = parse_function(function)
    if node is None:
        return None
    first = function_first_line(function)
    assigned = _assignments(node)
    return [_returned(r.value, first + r.lineno - 1, assigned) for r in _own_returns(node)]


def _own_returns(node: ast.AST) -> list[ast.Return]:
    found: list[ast.Return] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(child, ast.Return):
            found.append(child)
        found.extend(_own_returns(child))
    return found


def _assignments(node: ast.AST) -> dict[str, list[ast.expr]]:
    """``name -> [assigned values]`` (an augmented, annotated-only or unpacking target counts as unknown)."""
    out: dict[str, list[ast.expr]] = {}
    for sub in ast.walk(node):
        for name, value in _assigned(sub):
            out.setdefault(name, []).append(value)
    return out


def _unknown() -> ast.expr:
    """The value of an assignment this reading does not follow (``...``)."""
    return ast.Constant(value=...)


def _names(target: ast.AST | None) -> list[str]:
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)] if target is not None else []


def _assigned(sub: ast.AST) -> list[tuple[str, ast.expr]]:
    """The ``(name, value)`` pairs one node assigns, in order."""
    if isinstance(sub, ast.Assign):
        return [pair for target in sub.targets for pair in _target_values(target, sub.value)]
    if isinstance(sub, (ast.AugAssign, ast.AnnAssign, ast.NamedExpr)) and isinstance(sub.target, ast.Name):
        value = sub.value if isinstance(sub, (ast.AnnAssign, ast.NamedExpr)) else None
        return [(sub.target.id, value if value is not None else _unknown())]
    if isinstance(sub, ast.With):
        return [(name, _unknown()) for item in sub.items for name in _names(item.optional_vars)]
    if isinstance(sub, (ast.For, ast.comprehension)):
        return [(name, _unknown()) for name in _names(sub.target)]
    return []


def _target_values(target: ast.expr, value: ast.expr) -> list[tuple[str, ast.expr]]:
    if isinstance(target, ast.Name):
        return [(target.id, value)]
    if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
        names = [t.id for t in target.elts if isinstance(t, ast.Name)]
        if len(names) == len(target.elts):  # a, b = x.logits, x.loss
            return list(zip(names, value.elts, strict=True))
    return [(name, _unknown()) for name in _names(target)]


def _returned(value: ast.expr | None, line: int, assigned: dict[str, list[ast.expr]]) -> Returned:
    text = ast.unparse(value) if value is not None else "None"
    if value is None:
        return Returned(NONE, text, line)
    value = _resolved(value, assigned)
    if isinstance(value, ast.Tuple):
        first = _kind(value.elts[0], assigned) if value.elts and not isinstance(value.elts[0], ast.Starred) else OTHER
        return Returned(TUPLE, text, line, first=first)
    if isinstance(value, ast.Dict):
        keys = None if any(k is None for k in value.keys) else frozenset(
            k.value for k in value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str))
        return Returned(DICT, text, line, keys=keys)
    return Returned(_kind(value, assigned), text, line)


def _resolved(value: ast.expr, assigned: dict[str, list[ast.expr]]) -> ast.expr:
    """A local name assigned exactly once, as a tuple or dict literal, stands for that literal."""
    if isinstance(value, ast.Name) and len(assigned.get(value.id, ())) == 1:
        only = assigned[value.id][0]
        if isinstance(only, (ast.Tuple, ast.Dict)):
            return only
    return value


def _kind(value: ast.expr, assigned: dict[str, list[ast.expr]], depth: int = 0) -> str:
    if isinstance(value, ast.Constant) and value.value is None:
        return NONE
    if isinstance(value, ast.Attribute):
        return _by_name(value.attr)
    if isinstance(value, ast.Subscript) and isinstance(value.slice, ast.Constant) \
            and isinstance(value.slice.value, str):
        return _by_name(value.slice.value)
    if isinstance(value, ast.Call):
        func = value.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return LOSS if name in _LOSS_CALLS else OTHER
    if isinstance(value, ast.Name):
        return _name_kind(value.id, assigned, depth)
    return OTHER


def _name_kind(name: str, assigned: dict[str, list[ast.expr]], depth: int) -> str:
    values = assigned.get(name, [])
    if any(isinstance(v, (ast.Tuple, ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp)) for v in values):
        return OTHER
    if any(isinstance(v, ast.Constant) and v.value is ... for v in values):
        return OTHER  # assigned in a way this reading does not follow
    by_name = _by_name(name)
    if depth < 4 and values:  # every assignment must agree with the name
        kinds = {_kind(v, assigned, depth + 1) for v in values}
        kinds.discard(NONE)  # `loss = None` before `if labels is not None: loss = ...`
        if kinds - {by_name, OTHER}:
            return OTHER
    return by_name


def _by_name(name: str) -> str:
    if name == "loss" or name.endswith("_loss"):
        return LOSS
    if name == "logits" or name.endswith("_logits"):
        return LOGITS
    return OTHER
