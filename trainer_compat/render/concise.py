"""``--format concise``: one line per finding, ``file:line: CODE [severity] Name: message``, one line per skipped
check, then one summary line. The target's name follows the place only where the place does not already say it."""

from __future__ import annotations

from collections.abc import Sequence

from trainer_compat.render.common import clean, place, short_target, summary, where
from trainer_compat.report import Report


def render_concise(reports: Sequence[Report], *, verbosity: int = 0) -> str:
    lines = []
    for report in reports:
        for f in report.findings:
            loc = where(f, report)
            lines.append(f"{place(loc)}: {f.rule} [{f.severity.value}] {short_target(report, loc)}: {clean(f.message)}")
        if verbosity >= 0:
            lines += skipped_lines(report)
    lines.append(summary(reports))
    return "\n".join(lines)


def skipped_lines(report: Report) -> list[str]:
    loc = where(None, report)
    return [f"{place(loc)}: skipped {short_target(report, loc)}: {clean(note)}" for note in report.skipped]
