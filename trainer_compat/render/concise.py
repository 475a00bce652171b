"""``--format concise``: one line per finding, ``file:line: CODE message``, then one summary line."""

from __future__ import annotations

from collections.abc import Sequence

from trainer_compat.render.common import counts, plural, relative_uri, where
from trainer_compat.report import Report


def render_concise(reports: Sequence[Report]) -> str:
    lines = []
    for report in reports:
        for f in report.findings:
            loc = where(f, report)
            place = f"{relative_uri(loc.file)}:{loc.line or 1}"
            lines.append(f"{place}: {f.rule} [{f.severity.value}] {report.target}: {f.message}")
    n = counts(reports)
    if not lines:
        lines.append(f"All checks passed ({plural(n['targets'], 'target')}).")
    else:
        lines.append(f"Found {plural(n['errors'], 'error')}, {plural(n['warnings'], 'warning')} in "
                     f"{plural(n['targets'], 'target')} ({n['incompatible']} not compatible).")
    return "\n".join(lines)
