"""The unit every check produces: a Finding, with where it comes from and how to fix it."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Severity(str, enum.Enum):
    """How bad a finding is.

    ``error``: Trainer fails, or silently does the wrong thing, with the given arguments.
    ``warning``: a hazard that bites under other arguments, or a silent degradation.
    ``info``: worth knowing; nothing is wrong.
    """

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 2, "warning": 1, "info": 0}[self.value]


@dataclass(frozen=True)
class Location:
    """A place in a source file (``file:line``)."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Location | None:
        return cls(data["file"], data.get("line")) if data else None

    def under(self, root: Path, cwd: Path) -> Location:
        """This location relative to the project ``root`` when its file lies there (a path as shown, relative to
        ``cwd`` or absolute); a library's ``transformers/trainer.py`` or a file elsewhere stays as it is."""
        path = Path(self.file)
        path = path if path.is_absolute() else cwd / path
        try:
            relative = path.resolve().relative_to(root.resolve())
        except (ValueError, OSError):
            return self
        return Location(relative.as_posix(), self.line) if path.exists() else self


@dataclass(frozen=True)
class Finding:
    """One problem (or note) about one target, for one feature, under one transformers version."""

    rule: str
    name: str
    severity: Severity
    message: str
    member: str | None = None
    feature: str | None = None
    fix: str | None = None
    transformers_version: str | None = None
    call_site: Location | None = None
    location: Location | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "name": self.name,
            "severity": self.severity.value,
            "member": self.member,
            "feature": self.feature,
            "message": self.message,
            "fix": self.fix,
            "transformers_version": self.transformers_version,
            "call_site": self.call_site.to_dict() if self.call_site else None,
            "location": self.location.to_dict() if self.location else None,
            "details": self.details,
        }

    def under(self, root: Path, cwd: Path) -> Finding:
        """This finding with its locations relative to the project root (``Location.under``)."""
        return dataclasses.replace(self, location=self.location.under(root, cwd) if self.location else None,
                                   call_site=self.call_site.under(root, cwd) if self.call_site else None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """The inverse of ``to_dict``."""
        return cls(rule=data["rule"], name=data["name"], severity=Severity(data["severity"]),
                   message=data["message"], member=data.get("member"), feature=data.get("feature"),
                   fix=data.get("fix"), transformers_version=data.get("transformers_version"),
                   call_site=Location.from_dict(data.get("call_site")),
                   location=Location.from_dict(data.get("location")), details=dict(data.get("details") or {}))
