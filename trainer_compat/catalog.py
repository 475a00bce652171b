"""Every code a report can carry: the model rules and the workflow rules, and how to select among them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from trainer_compat.errors import UsageError
from trainer_compat.findings import Finding
from trainer_compat.rules import ALL_RULES, Rule

RuleClass: TypeAlias = type[Rule]


def all_rules() -> tuple[RuleClass, ...]:
    """Every rule: the model rules, the workflow rules (preflight, suppressions) and the isolation rules."""
    return ALL_RULES


def _number(code: str) -> int:
    return int(code.removeprefix("TC"))


def find_rule(code: str) -> RuleClass:
    """The rule with this code (or name); a UsageError naming the known codes otherwise."""
    wanted = code.strip()
    for rule in all_rules():
        if wanted.upper() == rule.code or wanted.lower() == rule.name:
            return rule
    raise UsageError(f"unknown rule {code!r} (see `trainer-compat rules`)")


def validate_codes(codes: Iterable[str], where: str) -> tuple[str, ...]:
    """Codes or prefixes (``TC3``, ``TC301``, ``ALL``), upper-cased; a UsageError for one that matches nothing."""
    known = [r.code for r in all_rules()]
    out = []
    for raw in codes:
        code = raw.strip().upper()
        if not code:
            continue
        if code != "ALL" and not any(k.startswith(code) for k in known):
            raise UsageError(f"{where}: unknown rule code {raw!r} (codes are TC001..{known[-1]}; "
                             "a prefix such as TC3 selects a family)")
        out.append(code)
    return tuple(out)


def _matches(code: str, patterns: Sequence[str]) -> int:
    """The length of the longest pattern matching ``code`` (0: none); ALL matches with length 1."""
    return max((1 if p == "ALL" else len(p) for p in patterns if p == "ALL" or code.startswith(p)), default=0)


@dataclass(frozen=True)
class Selection:
    """``--select`` / ``--ignore``: the most specific pattern wins, as in ruff; select defaults to ALL."""

    select: tuple[str, ...] = ("ALL",)
    ignore: tuple[str, ...] = ()

    @classmethod
    def of(cls, select: Iterable[str] | None = None, ignore: Iterable[str] | None = None,
           where: str = "") -> Selection:
        chosen = validate_codes(select, f"{where}select") if select is not None else ("ALL",)
        return cls(chosen or ("ALL",), validate_codes(ignore or (), f"{where}ignore"))

    def wants(self, code: str) -> bool:
        selected, ignored = _matches(code, self.select), _matches(code, self.ignore)
        return selected > 0 and selected > ignored

    def filter(self, findings: Iterable[Finding]) -> list[Finding]:
        return [f for f in findings if self.wants(f.rule)]
