"""Plain text: what ``str(report)`` shows and what logs and exception messages carry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainer_compat.report import Report



def render_text(reports: Sequence[Report]) -> str:
    lines: list[str] = []
    for report in reports:
        lines.append(report.verdict())
        for f in report.findings:
            where = f" [{f.location}]" if f.location else ""
            lines.append(f"  {f.severity.value:7} {f.rule} {f.name}{where}: {f.message}")
            if f.fix:
                lines.append(f"          fix: {f.fix}")
        for note in report.skipped:
            lines.append(f"  skipped {note}")
    return "\n".join(lines)
