"""``--static``'s TrainingArguments: the given fields over the defaults the installed release's source declares.

A full check validates the arguments by constructing the real ``TrainingArguments``, which imports transformers
and torch (seconds). ``--static`` reads the dataclass's fields from the installed transformers' (or TRL's) source
file instead, never importing it, and applies the few normalisations the rules depend on (the deprecated aliases,
``do_eval``). An unknown field is refused as the constructor refuses it; the constructor's cross-field validation
runs only in a full check, and the report says so.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from trainer_compat.errors import UsageError
from trainer_compat.library_source import package_root

NOT_VALIDATED = "the arguments' cross-field validation (TrainingArguments.__post_init__) runs only without --static"

# (package, file inside it, class): where each arguments class of a trainer kind is declared.
_CLASSES = {
    "trainer": ("transformers", "training_args.py", "TrainingArguments"),
    "seq2seq": ("transformers", "training_args_seq2seq.py", "Seq2SeqTrainingArguments"),
    "sft": ("trl", "trainer/sft_config.py", "SFTConfig"),
    "dpo": ("trl", "trainer/dpo_config.py", "DPOConfig"),
    "reward": ("trl", "trainer/reward_config.py", "RewardConfig"),
    "grpo": ("trl", "trainer/grpo_config.py", "GRPOConfig"),
}
_UNREAD = object()  # a default the source does not spell as a literal


class StaticArguments:
    """Attribute access like a TrainingArguments: a given field, else its declared default."""

    def __init__(self, class_name: str, values: Mapping[str, Any]) -> None:
        self.__dict__["_class_name"] = class_name
        self.__dict__["_values"] = dict(values)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__["_values"]
        if name in values and values[name] is not _UNREAD:
            return values[name]
        raise AttributeError(f"{self.__dict__['_class_name']} has no field {name!r} with a literal default")

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__["_values"][name] = value

    def __repr__(self) -> str:
        return f"{self._class_name}(static: {len(self._values)} fields)"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if v is not _UNREAD}


def static_arguments(fields: Mapping[str, Any], trainer: str) -> StaticArguments:
    """The arguments of ``trainer``'s kind, read from source: unknown fields are one line (exit 2)."""
    package, file, class_name = _CLASSES.get(trainer, _CLASSES["trainer"])
    defaults = _declared_fields(package, file, class_name)
    if defaults is None:
        raise UsageError(f"--static: cannot read {class_name}'s fields from the installed {package} "
                         f"({package}/{file}): run without --static")
    unknown = sorted(set(fields) - set(defaults))
    if unknown:
        raise UsageError(f"--args: {class_name}.__init__() got an unexpected keyword argument {unknown[0]!r}")
    values = {**defaults, **fields}
    _normalise(values, given=set(fields))
    return StaticArguments(class_name, values)


def _normalise(values: dict[str, Any], given: set[str]) -> None:
    from trainer_compat.protocol.arguments import ARGUMENT_ALIASES

    for old, new in ARGUMENT_ALIASES:
        if old in values and new in values:
            if values[new] is None and values[old] is not None:
                values[new] = values[old]
            values[old] = values[new]
    if values.get("activation_checkpointing", False) is None:
        values["activation_checkpointing"] = values["gradient_checkpointing"] = False
    if "evaluation_strategy" in given and "eval_strategy" in values and "eval_strategy" not in given:
        values["eval_strategy"] = values["evaluation_strategy"]
    strategy = values.get("eval_strategy", values.get("evaluation_strategy", "no"))
    if "do_eval" in values and not values["do_eval"] and str(getattr(strategy, "value", strategy)) != "no":
        values["do_eval"] = True
    if isinstance(values.get("fsdp"), str):
        values["fsdp"] = values["fsdp"].split()


@cache
def _declared_fields(package: str, file: str, class_name: str) -> dict[str, Any] | None:
    root = package_root(package)
    if root is None:
        return None
    return _class_fields(root, root / file, class_name, depth=0)


def _class_fields(root: Path, path: Path, class_name: str, depth: int) -> dict[str, Any] | None:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if node is None or depth > 4:
        return None
    fields: dict[str, Any] = {}
    for base in node.bases:  # a TRL config extends TrainingArguments: its fields first, overridden below
        name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else None
        found = _base_file(root, path, tree, name) if name else None
        if found is not None and name:
            fields.update(_class_fields(found[0], found[1], name, depth + 1) or {})
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            fields[stmt.target.id] = _default(stmt.value)
    return fields


def _base_file(root: Path, path: Path, tree: ast.Module, name: str) -> tuple[Path, Path] | None:
    """The (package root, file) that declares base class ``name``, followed through the file's imports."""
    if name == "TrainingArguments":
        transformers = package_root("transformers")
        return (transformers, transformers / "training_args.py") if transformers else None
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level and any(a.name == name for a in node.names):
            folder = path.parent
            for _ in range(node.level - 1):
                folder = folder.parent
            candidate = folder.joinpath(*(node.module or "").split(".")).with_suffix(".py")
            return (root, candidate) if candidate.is_file() else None
    return None


def _default(value: ast.expr | None) -> Any:
    """A field's default: ``= literal``, ``field(default=literal)``, ``field(default_factory=list|dict|lambda)``."""
    if value is None:
        return _UNREAD
    if isinstance(value, ast.Call) and getattr(value.func, "id", getattr(value.func, "attr", None)) == "field":
        keywords = {k.arg: k.value for k in value.keywords}
        if "default" in keywords:
            return _literal(keywords["default"])
        factory = keywords.get("default_factory")
        if isinstance(factory, ast.Name) and factory.id in ("list", "dict"):
            return [] if factory.id == "list" else {}
        if isinstance(factory, ast.Lambda):
            return _literal(factory.body)
        return _UNREAD
    return _literal(value)


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):  # IntervalStrategy.NO and kin
            return node.attr.lower()
        return _UNREAD
