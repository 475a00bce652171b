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
from typing import Any

from trainer_compat.errors import UsageError
from trainer_compat.library_source import declaring_file, imported_from, parsed

NOT_VALIDATED = "the arguments' cross-field validation (TrainingArguments.__post_init__) runs only without --static"

# The arguments class of each trainer kind, as the package exports it (library_source finds its file).
_CLASSES = {
    "trainer": "transformers.TrainingArguments",
    "seq2seq": "transformers.Seq2SeqTrainingArguments",
    "sft": "trl.SFTConfig",
    "dpo": "trl.DPOConfig",
    "reward": "trl.RewardConfig",
    "grpo": "trl.GRPOConfig",
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
    dotted = _CLASSES.get(trainer, _CLASSES["trainer"])
    package, _, class_name = dotted.partition(".")
    defaults = _declared_fields(dotted)
    if defaults is None:
        raise UsageError(f"--static: cannot read {class_name}'s fields from the installed {package}: run without "
                         "--static")
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
def _declared_fields(dotted: str, depth: int = 0) -> dict[str, Any] | None:
    """The dataclass fields of the class ``dotted`` names, its bases' first (a TRL config extends
    TrainingArguments), read from the declaring file that ``library_source`` finds without importing."""
    found = declaring_file(dotted)
    tree = parsed(found[0]) if found is not None else None
    if found is None or tree is None or depth > 4:
        return None
    _, module, name = found
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    if node is None:
        return None
    fields: dict[str, Any] = {}
    for base in node.bases:
        base_name = base.id if isinstance(base, ast.Name) else None
        origin = imported_from(tree, module, base_name) if base_name else None
        fields.update((_declared_fields(origin, depth + 1) if origin else None) or {})
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            fields[stmt.target.id] = _default(stmt.value)
    return fields


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
