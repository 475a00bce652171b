"""Shared analysis of models and classes, for rules, shims and the probe alike.

Every question here is answered without importing torch or transformers: a class is recognised by the
module and name of the classes in its MRO, and an object can only be a torch module once torch is loaded.
So the same helpers serve a built model and ``--static``'s stand-in classes (rebuilt from source, never
imported), and the checks that need no instance stay as light as ``ruff``.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
from typing import TYPE_CHECKING, Any

from trainer_compat.findings import Location

if TYPE_CHECKING:
    from packaging.version import Version

# The packages whose classes are library code, not the user's (their members are "inherited from" them).
LIBRARY_PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "deepspeed")


def torch_loaded() -> bool:
    return "torch" in sys.modules


def is_module(obj: object) -> bool:
    """An ``nn.Module`` instance (no torch loaded: nothing can be one)."""
    if not torch_loaded():
        return False
    from torch import nn

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


def can_checkpoint(module: Any) -> bool:
    """A PreTrainedModel's own checkpointing succeeds: it declares support and some module carries the flag."""
    if not getattr(module, "supports_gradient_checkpointing", False):
        return False
    return any(hasattr(m, "gradient_checkpointing") for m in module.modules())


CHECKPOINTING_METHODS = ("gradient_checkpointing_enable", "activation_checkpointing_enable")
_NON_REENTRANT = re.compile(r"""["']use_reentrant["']\s*:\s*False|use_reentrant\s*=\s*False|"""
                            r"""setdefault\(\s*["']use_reentrant["']\s*,\s*False""")


def checkpointing_kwargs(args: Any) -> dict[str, Any]:
    """The checkpointing kwargs the arguments pass (5.23+ name first), ``{}`` for none."""
    for name in ("activation_checkpointing_kwargs", "gradient_checkpointing_kwargs"):
        value = getattr(args, name, None)
        if value:
            return dict(value)
    return {}


def uses_reentrant(ctx: Any, default: bool) -> bool:
    """Whether checkpointing will be reentrant: the arguments' explicit use_reentrant, else False where the
    model's own checkpointing method defaults to non-reentrant (trainer-compat's shims, patched or written by
    `fix`, do), else the release's default."""
    explicit = checkpointing_kwargs(ctx.setup.args).get("use_reentrant")
    if explicit is not None:
        return bool(explicit)
    for name in CHECKPOINTING_METHODS:
        info = ctx.subject.member(name)
        if info.provenance.value in ("defined", "inherited") and _defaults_non_reentrant(info.value):
            return False
    return default


def _defaults_non_reentrant(method: Any) -> bool:
    function = getattr(method, "__func__", method)
    try:
        source = inspect.getsource(function)
    except (TypeError, OSError):
        return False
    return bool(_NON_REENTRANT.search(source))


def installed_trl() -> Version | None:
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    if importlib.util.find_spec("trl") is None:
        return None

    try:
        return Version(Version(version("trl")).base_version)
    except PackageNotFoundError:
        return None


def trl_since(ctx: Any, release: Version) -> Version | None:
    """The installed TRL when the check is for SFTTrainer and that TRL has the behaviour, else None."""
    if ctx.setup.trainer != "sft":
        return None
    trl = installed_trl()
    return trl if trl is not None and trl >= release else None


def replaces_forward(trl: Version | None, loss_type: object) -> bool:
    """Whether SFTTrainer of this TRL release patches model.forward with its own LM head for this loss_type."""
    from trainer_compat.protocol.trl import CHUNKED_TRL, FUSED_HEAD_TRL

    return trl is not None and (trl >= FUSED_HEAD_TRL or (trl >= CHUNKED_TRL and loss_type == "chunked_nll"))


def sft_head_patched(ctx: Any) -> Version | None:
    from trainer_compat.protocol.trl import CHUNKED_TRL

    trl = trl_since(ctx, CHUNKED_TRL)
    return trl if replaces_forward(trl, getattr(ctx.setup.args, "loss_type", None)) else None


def sft_keeps_fixed_columns(ctx: Any) -> bool:
    """SFTTrainer keeps its own column list (input_ids, labels, seq_lengths, ...) whatever the forward declares."""
    if ctx.setup.trainer != "sft" or installed_trl() is None:
        return False
    from trl import SFTTrainer

    return "_set_signature_columns_if_needed" in vars(SFTTrainer)


def sft_computes_the_loss(ctx: Any) -> bool:
    """SFTTrainer replaces model.forward with its own LM head and loss, normalised by num_items_in_batch."""
    return sft_head_patched(ctx) is not None


def backbone_attr(ctx: Any) -> str:
    """TRL reads `base_model`; before transformers 5, `model` for a model whose text config is a sub-config."""
    config = ctx.subject.member("config").value if ctx.subject.member("config").present else None
    get_text = getattr(config, "get_text_config", None)
    from packaging.version import Version

    if ctx.version < Version("5.0.0") and callable(get_text):
        try:
            return "base_model" if get_text() is config else "model"
        except Exception:
            return "base_model"
    return "base_model"


_CATCH_ALL = (None, "Exception", "BaseException")


def swallowing_handlers(node: ast.AST) -> list[ast.ExceptHandler]:
    handlers = []
    for sub in ast.walk(node):
        if not isinstance(sub, ast.ExceptHandler):
            continue
        caught = sub.type.id if isinstance(sub.type, ast.Name) else (None if sub.type is None else "specific")
        if caught in _CATCH_ALL and not any(isinstance(n, ast.Raise) for n in ast.walk(sub)):
            handlers.append(sub)
    return handlers


def enables_checkpointing(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if "checkpointing_enable" in name or name in ("checkpoint", "_set_gradient_checkpointing", "apply"):
                return True
        if isinstance(sub, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "gradient_checkpointing"
                                               for t in sub.targets):
            return True
    return False


def _flag_only_lines(node: ast.AST) -> list[int]:
    lines = []
    for sub in ast.walk(node):
        if not isinstance(sub, ast.Assign):
            continue
        for t in sub.targets:
            key: object = t.attr if isinstance(t, ast.Attribute) else None
            if isinstance(t, ast.Subscript) and isinstance(t.slice, ast.Constant):
                key = t.slice.value
            if key == "use_cache":
                lines.append(sub.lineno)
    return lines


def shim_problems(node: ast.AST, loc: Location | None) -> list[str]:
    """How a checkpointing method (its AST; ``loc`` where it starts) can return without enabling checkpointing:
    a catch-all handler that does not re-raise, a use_cache fallback, no checkpointing call at all."""
    offset = (loc.line - 1) if loc and loc.line else 0

    def at(line: int) -> str:
        return str(Location(loc.file, line + offset)) if loc else f"line {line}"

    problems = [f"catches every exception at {at(h.lineno)} without re-raising"
                for h in swallowing_handlers(node)]
    flag_lines = _flag_only_lines(node)
    if flag_lines and problems:
        problems.append(f"falls back to setting use_cache at {at(flag_lines[0])}, which does not checkpoint")
    if not enables_checkpointing(node):
        problems.append("calls no checkpointing function and sets no `gradient_checkpointing` flag")
    return problems


def class_names(model: Any) -> dict[str, type]:
    """Class name -> class, in the order accelerate's get_module_class_from_name finds them (depth first)."""
    found: dict[str, type] = {}
    for module in model.modules():
        found.setdefault(type(module).__name__, type(module))
    return found


def known_layer_classes(model: Any) -> list[str]:
    """The `_no_split_modules` of the submodules, aggregated, kept to the classes really in the tree (in the order
    accelerate's get_module_class_from_name finds them: depth first)."""
    present = class_names(model)
    names: list[str] = []
    for module in list(model.modules())[1:]:
        for name in getattr(module, "_no_split_modules", None) or []:
            if name in present and name not in names:
                names.append(name)
    return names
