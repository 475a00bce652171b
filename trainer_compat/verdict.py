"""What a report means for the gate: suppressions and selection applied, then pass or fail and the exit code."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from trainer_compat.catalog import Selection
from trainer_compat.findings import Severity
from trainer_compat.report import Report


def finalize(report: Report, selection: Selection | None = None) -> Report:
    """Apply the target's suppression comments, then the selection (what every view then shows)."""
    from trainer_compat.suppress import apply_suppressions

    return select(apply_suppressions(report), selection)


def select(report: Report, selection: Selection | None) -> Report:
    """Only the findings ``selection`` wants (``--select`` / ``--ignore``)."""
    if selection is None:
        return report
    return dataclasses.replace(report, findings=selection.filter(report.findings))


def fails(report: Report, fail_on: str = "error") -> bool:
    """Whether the report fails the gate: an error, or (``fail_on="warning"``) a warning too."""
    floor = Severity(fail_on).rank
    return any(f.severity.rank >= floor for f in report.findings)


def exit_code(reports: Sequence[Report], fail_on: Sequence[str] | str = "error") -> int:
    levels = [fail_on] * len(reports) if isinstance(fail_on, str) else list(fail_on)
    return 1 if any(fails(r, level) for r, level in zip(reports, levels, strict=False)) else 0
