"""What every view needs: where a finding points, and counts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePath

from trainer_compat.findings import Finding, Location, Severity
from trainer_compat.report import Report


def where(finding: Finding, report: Report) -> Location:
    """The finding's place, else the target's class, else the target's file (line 1), else the target itself."""
    if finding.location:
        return finding.location
    if report.location:
        return report.location
    module_part = report.target.rpartition(":")[0]
    return Location(module_part if module_part.endswith(".py") else report.target, 1)


def relative_uri(file: str) -> str:
    """A repo-relative POSIX path when the file lies under the working directory."""
    path = Path(file)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            return PurePath(file).as_posix()
    return path.as_posix().replace(os.sep, "/")


def counts(reports: Sequence[Report]) -> dict[str, int]:
    findings = [f for r in reports for f in r.findings]
    return {
        "targets": len(reports),
        "incompatible": sum(not r.compatible for r in reports),
        "errors": sum(f.severity is Severity.ERROR for f in findings),
        "warnings": sum(f.severity is Severity.WARNING for f in findings),
        "infos": sum(f.severity is Severity.INFO for f in findings),
    }


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"
