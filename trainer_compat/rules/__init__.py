"""Every model rule, in code order: each module of this package contributes the Rule classes it defines.

``workflow`` (preflight and suppression rules, see ``catalog``) and ``isolation`` (report-level rules)
are not model rules; ``base`` holds the vocabulary.
"""

from __future__ import annotations

import importlib
import pkgutil

from trainer_compat.rules.base import Context, Example, Rule

_NOT_MODEL_RULES = frozenset({"base", "workflow", "isolation"})


def _discover() -> tuple[type[Rule], ...]:
    found: list[type[Rule]] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _NOT_MODEL_RULES:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(obj for obj in vars(module).values()
                     if isinstance(obj, type) and issubclass(obj, Rule) and obj.__module__ == module.__name__
                     and "code" in vars(obj))
    return tuple(sorted(found, key=lambda r: int(r.code.removeprefix("TC"))))


ALL_RULES: tuple[type[Rule], ...] = _discover()


def rule_by_code(code: str) -> type[Rule]:
    for rule in ALL_RULES:
        if rule.code == code.upper():
            return rule
    raise KeyError(code)


__all__ = ["ALL_RULES", "Context", "Example", "Rule", "rule_by_code"]
