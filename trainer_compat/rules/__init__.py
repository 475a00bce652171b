"""The one registry: every rule, in code order; each module of this package contributes the Rule classes it defines.

``MODEL_RULES`` are those that read a Context (the checker runs them); the others declare codes that preflight
(``workflow``), the suppression comments (``workflow``) or the isolated check (``isolation``) report. ``base`` holds
the vocabulary.
"""

from __future__ import annotations

import importlib
import pkgutil

from trainer_compat.rules.base import Context, Example, Expect, Rule


def _discover() -> tuple[type[Rule], ...]:
    found: list[type[Rule]] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(obj for obj in vars(module).values()
                     if isinstance(obj, type) and issubclass(obj, Rule) and obj.__module__ == module.__name__
                     and "code" in vars(obj))
    rules = tuple(sorted(found, key=lambda r: int(r.code.removeprefix("TC"))))
    for attribute in ("code", "name"):
        seen: dict[str, type[Rule]] = {}
        for rule in rules:
            other = seen.setdefault(getattr(rule, attribute), rule)
            if other is not rule:
                raise TypeError(f"rules {other.__qualname__} and {rule.__qualname__} share the {attribute} "
                                f"{getattr(rule, attribute)!r}")
    return rules


ALL_RULES: tuple[type[Rule], ...] = _discover()
MODEL_RULES: tuple[type[Rule], ...] = tuple(r for r in ALL_RULES if r.produced_by is None)

__all__ = ["ALL_RULES", "MODEL_RULES", "Context", "Example", "Expect", "Rule"]
