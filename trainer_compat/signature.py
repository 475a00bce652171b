"""The forward signature as Trainer inspects it, per transformers version."""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from typing import Any

from packaging.version import Version

from trainer_compat import analysis
from trainer_compat.protocol.data import ACCEPTS_LOSS_KWARGS_ATTR, LOSS_KWARGS_ANY_VAR_KEYWORD
from trainer_compat.subject import Subject, parse_function

_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _signature(obj: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


def inspected_module(subject: Subject) -> Any:
    """What Trainer inspects for columns: the PEFT base model for a PeftModel, else the model."""
    model = subject.instance
    get_base_model = getattr(model, "get_base_model", None) if model is not None and subject.is_peft else None
    return get_base_model() if get_base_model is not None else model


@dataclass(frozen=True)
class ForwardView:
    """The forward as Trainer sees it: the bound signature (columns) and the class one (labels)."""

    bound: inspect.Signature | None
    unbound: inspect.Signature | None
    function: Any

    @classmethod
    def of(cls, subject: Subject) -> ForwardView:
        module = inspected_module(subject)
        klass = type(module) if module is not None else subject.cls
        bound = _signature(module.forward) if module is not None else None
        function = getattr(klass, "forward", None)
        unbound = _signature(function) if function is not None else None
        if bound is None and unbound is not None:  # class-only: drop `self`
            params = list(unbound.parameters.values())[1:]
            bound = unbound.replace(parameters=params)
        return cls(bound, unbound, function)

    @property
    def short(self) -> str:
        """The signature without annotations or defaults: ``(input_ids, labels, **kwargs)``."""
        if self.bound is None:
            return "(...)"
        marks = {inspect.Parameter.VAR_POSITIONAL.name: "*", inspect.Parameter.VAR_KEYWORD.name: "**"}
        return "(" + ", ".join(marks.get(p.kind.name, "") + n for n, p in self.bound.parameters.items()) + ")"

    @property
    def columns(self) -> list[str]:
        """Parameter names Trainer keeps as columns (every name, as Trainer does, *args/**kwargs included)."""
        return list(self.bound.parameters) if self.bound else []

    @property
    def keyword_params(self) -> list[str]:
        if self.bound is None:
            return []
        return [n for n, p in self.bound.parameters.items() if p.kind in _KEYWORD_KINDS]

    @property
    def var_keyword(self) -> str | None:
        if self.bound is None:
            return None
        return next((n for n, p in self.bound.parameters.items() if p.kind is inspect.Parameter.VAR_KEYWORD), None)


def label_names(klass: type) -> list[str]:
    """Trainer's default label names: transformers' own find_labels on the class (once transformers is loaded;
    before, for ``--static``, the same rule: forward's parameters containing "label", and start/end_positions for a
    QuestionAnswering class; ``tests/test_static.py`` holds the two to the same answers)."""
    import sys

    try:
        if "transformers" in sys.modules:
            from transformers.utils.generic import find_labels

            return list(find_labels(klass))
        names = list(inspect.signature(getattr(klass, "forward")).parameters)  # noqa: B009 (typed as a plain type)
    except (TypeError, ValueError, AttributeError):
        return []
    qa = "QuestionAnswering" in klass.__name__
    return [p for p in names if "label" in p or (qa and p in ("start_positions", "end_positions"))]


def can_return_loss(klass: type) -> bool:
    """transformers' can_return_loss (before it is loaded: the same rule, a ``return_loss=True`` parameter)."""
    import sys

    try:
        if "transformers" in sys.modules:
            from transformers.utils.generic import can_return_loss as _can_return_loss

            return bool(_can_return_loss(klass))
        parameter = inspect.signature(getattr(klass, "forward")).parameters.get("return_loss")  # noqa: B009
    except (TypeError, ValueError, AttributeError):
        return False
    return parameter is not None and parameter.default is True


@dataclass(frozen=True)
class LossKwargs:
    accepts: bool
    reason: str


def loss_kwargs_decision(subject: Subject, version: Version) -> LossKwargs:
    """Whether this Trainer version passes num_items_in_batch and stops dividing by accumulation steps."""
    module = loss_module(subject)
    if version >= Version(ACCEPTS_LOSS_KWARGS_ATTR):
        info = subject.member("accepts_loss_kwargs") if module is subject.instance else None
        if info is not None and info.present and info.value is not None and not callable(info.value):
            return LossKwargs(bool(info.value), f"`accepts_loss_kwargs = {info.value!r}` on the model")
        if module is not None and module is not subject.instance and hasattr(module, "accepts_loss_kwargs"):
            return LossKwargs(bool(module.accepts_loss_kwargs), "`accepts_loss_kwargs` on the unwrapped model")
    forward = getattr(module, "forward", None) if module is not None else getattr(subject.cls, "forward", None)
    signature = _signature(forward) if forward is not None else None
    var_kw = next((p for p in (signature.parameters.values() if signature else ())
                   if p.kind is inspect.Parameter.VAR_KEYWORD), None)
    if var_kw is None:
        return LossKwargs(False, "forward has no **kwargs")
    if version < Version(LOSS_KWARGS_ANY_VAR_KEYWORD) and var_kw.name != "loss_kwargs":
        return LossKwargs(False, f"forward's **{var_kw.name} is not named **loss_kwargs")
    return LossKwargs(True, f"forward takes **{var_kw.name}")


def unwrap_compiled(module: Any) -> Any:
    """The module inside a torch.compile wrapper, found without attribute look-ups (a __getattr__ may raise)."""
    try:
        from torch._dynamo.eval_frame import OptimizedModule
    except ImportError:  # pragma: no cover - torch without dynamo
        return module
    return vars(module)["_modules"]["_orig_mod"] if isinstance(module, OptimizedModule) else module


def loss_module(subject: Subject) -> Any:
    """The module whose forward Trainer inspects for loss kwargs: torch.compile and PEFT unwrapped."""
    module = subject.instance
    if module is None:
        return None
    module = unwrap_compiled(module)  # accelerate's unwrap_model strips torch.compile
    if subject.is_peft and hasattr(module, "get_base_model"):
        module = module.get_base_model()
    return module


def uses_num_items_in_batch(function: Any, owner: Any = None, depth: int = 0) -> bool | None:
    """Does this forward read num_items_in_batch, or hand its **kwargs to something that does?

    None when its source is unknown. ``owner`` (the module whose forward it is) lets the answer follow
    ``self.<submodule>(**kwargs)`` into the inner model. A PreTrainedModel normalises by num_items_in_batch only
    through ``self.loss_function(..., **kwargs)``; its other calls hand the kwargs to layers, not to the loss.
    """
    node = parse_function(function)
    if node is None:
        return None
    params = [a.arg for a in node.args.args + node.args.kwonlyargs]
    if "num_items_in_batch" in params:
        return _name_used(node, "num_items_in_batch")
    if any(_is_discarded_pop(sub) for sub in ast.walk(node)):
        return False
    if any(isinstance(sub, ast.Constant) and sub.value == "num_items_in_batch" for sub in ast.walk(node)):
        return True
    var_kw = node.args.kwarg.arg if node.args.kwarg else None
    if var_kw is None:
        return False
    return _kwargs_reach_it(node, var_kw, owner, depth)


def _kwargs_reach_it(node: ast.FunctionDef | ast.AsyncFunctionDef, var_kw: str, owner: Any, depth: int) -> bool:
    """Does some call that takes ``**var_kw`` read num_items_in_batch (``uses_num_items_in_batch``'s last step)?"""
    pretrained = _is_pretrained(owner)
    for call in _calls_passing(node, var_kw):
        if pretrained:
            if isinstance(call.func, ast.Attribute) and call.func.attr == "loss_function":
                return True
            continue
        inner = submodule_called(call.func, owner) if depth < 8 else None
        if inner is None:  # handed to something that cannot be followed: assume it uses them
            return True
        if uses_num_items_in_batch(type(inner).forward, inner, depth + 1) is not False:
            return True
    return False


def _calls_passing(node: ast.AST, var_kw: str) -> list[ast.Call]:
    return [sub for sub in ast.walk(node) if isinstance(sub, ast.Call) and any(
        k.arg is None and isinstance(k.value, ast.Name) and k.value.id == var_kw for k in sub.keywords)]


def _is_pretrained(owner: Any) -> bool:
    return owner is not None and analysis.is_pretrained(owner)


def submodule_called(func: ast.expr, owner: Any) -> Any:
    """The submodule of ``owner`` that ``self.a.b(...)`` or ``self.a.b.forward(...)`` calls, else None."""
    from torch import nn

    chain = []
    while isinstance(func, ast.Attribute):
        chain.append(func.attr)
        func = func.value
    if not (isinstance(func, ast.Name) and func.id == "self") or not isinstance(owner, nn.Module):
        return None
    chain.reverse()
    if chain and chain[-1] == "forward":
        chain.pop()
    module = owner
    for name in chain:
        module = vars(module).get("_modules", {}).get(name)  # submodules only: no __getattr__, no properties
        if module is None:
            return None
    return module if chain else None


def _is_discarded_pop(node: ast.AST) -> bool:
    """``kwargs.pop("num_items_in_batch", ...)`` as a statement of its own: the value is thrown away."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return False
    call = node.value
    return (isinstance(call.func, ast.Attribute) and call.func.attr == "pop" and bool(call.args)
            and isinstance(call.args[0], ast.Constant) and call.args[0].value == "num_items_in_batch")


def _name_used(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Load) for n in ast.walk(node))


def kwargs_keys_read(forward: Any) -> list[tuple[str, int]]:
    """The keys a ``forward(**kwargs)`` reads by name (``kwargs.pop("x")``, ``kwargs.get("x")``, ``kwargs["x"]``,
    ``"x" in kwargs``), each with the line in the forward's file where it is first read; [] without source."""
    node = parse_function(forward)
    if node is None or node.args.kwarg is None:
        return []
    var = node.args.kwarg.arg
    first = function_first_line(forward)
    keys: dict[str, int] = {}
    for sub in ast.walk(node):
        if not isinstance(sub, ast.expr):  # the reads below are all expressions
            continue
        key: str | None = None
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr in ("pop", "get") \
                and _is_name(sub.func.value, var) and sub.args:
            key = _str_of(sub.args[0])
        elif isinstance(sub, ast.Subscript) and _is_name(sub.value, var):
            key = _str_of(sub.slice)
        elif isinstance(sub, ast.Compare) and len(sub.ops) == 1 and isinstance(sub.ops[0], (ast.In, ast.NotIn)) \
                and _is_name(sub.comparators[0], var):
            key = _str_of(sub.left)
        if key is not None:
            line = first + sub.lineno - 1
            keys[key] = min(keys.get(key, line), line)
    return sorted(keys.items(), key=lambda item: item[1])


def function_first_line(function: Any) -> int:
    """The line of ``def`` in the function's file (1 when unknown): AST line numbers count from it."""
    target = getattr(inspect.unwrap(function), "__func__", inspect.unwrap(function))
    try:
        return inspect.getsourcelines(target)[1] or 1
    except (TypeError, OSError):
        return 1


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _str_of(node: ast.AST) -> str | None:
    """The text of a string literal, else None."""
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
