"""A Report: the findings about one target, plus what was looked at and what was skipped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainer_compat.findings import Finding, Location, Severity


@dataclass(frozen=True)
class MemberRow:
    """Provenance of one protocol member on the target (for the report's member table)."""

    name: str
    provenance: str
    detail: str
    needed_by: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "provenance": self.provenance, "detail": self.detail,
                "needed_by": list(self.needed_by)}


@dataclass
class Report:
    target: str
    transformers_version: str
    torch_version: str
    trainer: str
    features: tuple[str, ...]
    findings: list[Finding] = field(default_factory=list)
    members: list[MemberRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    location: Location | None = None

    @property
    def compatible(self) -> bool:
        return not any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    def codes(self) -> set[str]:
        return {f.rule for f in self.findings}

    def verdict(self) -> str:
        errors, warnings = len(self.errors), len(self.warnings)
        head = "compatible" if self.compatible else "NOT compatible"
        return (f"{self.target}: {head} with transformers {self.transformers_version} {self.trainer} "
                f"({errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "compatible": self.compatible,
            "transformers": self.transformers_version,
            "trainer": self.trainer,
            "features": list(self.features),
            "location": self.location.to_dict() if self.location else None,
            "findings": [f.to_dict() for f in self.findings],
            "members": [m.to_dict() for m in self.members],
            "skipped": list(self.skipped),
        }

    def __str__(self) -> str:
        from trainer_compat.render.text import render_text

        return render_text([self])
