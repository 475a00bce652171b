"""The vocabulary of the protocol data: what Trainer reads or calls on the model, and how."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from trainer_compat.features import Feature
from trainer_compat.findings import Severity
from trainer_compat.versions import ALWAYS, VersionRange


class Guard(str, enum.Enum):
    HARD = "unguarded"  # read or called unconditionally once a trigger feature is on
    HASATTR = "hasattr-guarded"  # optional: Trainer checks for it and falls back silently
    FALLBACK = "fallback"  # called only when the `preferred` member is absent
    CONDITIONAL = "conditional"  # read only on a data-dependent path (see `condition`)
    PRETRAINED_ONLY = "PreTrainedModel-only"  # never used for a duck-typed module


class Kind(str, enum.Enum):
    METHOD = "method"
    ATTRIBUTE = "attribute"


@dataclass(frozen=True)
class Site:
    """Where Trainer makes the access: a regex over the source of one of ``modules``.

    Sites are resolved against the installed transformers, so each finding's ``file:line`` is the
    line of the version that is really installed; a forecast (``--transformers-version``) reads the line recorded
    for that release in ``protocol/lines.json``. Registration: a Site is a module-level constant of a rule module
    (or a requirement in ``protocol/data.py``), which is where ``scripts/record_site_lines.py`` finds the sites it
    records; ``tests/test_architecture.py`` refuses a Site built anywhere else.
    """

    pattern: str
    modules: tuple[str, ...] = ("transformers.trainer",)


@dataclass(frozen=True)
class CallShape:
    """The keyword arguments of the call Trainer makes (values never matter for binding)."""

    kwargs: tuple[str, ...] = ()

    def __str__(self) -> str:
        return ", ".join(f"{k}=..." for k in self.kwargs)


@dataclass(frozen=True)
class Requirement:
    """One member Trainer reads or calls on the model, for one range of transformers versions."""

    member: str
    kind: Kind
    features: frozenset[Feature]
    guard: Guard
    site: Site
    consequence: str
    versions: VersionRange = ALWAYS
    call: CallShape | None = None
    preferred: str | None = None  # Guard.FALLBACK: Trainer calls this one instead when present
    condition: str | None = None  # Guard.CONDITIONAL: the path on which it is read
    when_missing: Severity | None = Severity.ERROR  # None: other rules own the consequence
    trainers: tuple[str, ...] = ("trainer", "seq2seq")
    fix: str | None = None
    notes: tuple[str, ...] = field(default=())

    def applies(self, version: object, features: frozenset[Feature], trainer: str) -> bool:
        return version in self.versions and trainer in self.trainers and bool(self.features & features)

    def call_text(self) -> str:
        if self.kind is Kind.METHOD and self.call is not None:
            return f"model.{self.member}({self.call})"
        return f"model.{self.member}"
