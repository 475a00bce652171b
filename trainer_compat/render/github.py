"""``--format github``: GitHub Actions workflow commands (annotations on the pull request's files).

GitHub shows at most 10 annotations per level and step, so the most severe come first and the rest are
counted in one closing line.
"""

from __future__ import annotations

from collections.abc import Sequence

from trainer_compat.findings import Severity
from trainer_compat.render.common import relative_uri, where
from trainer_compat.report import Report

PER_LEVEL = 10
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(reports: Sequence[Report]) -> str:
    pairs = sorted(((f, r) for r in reports for f in r.findings), key=lambda p: -p[0].severity.rank)
    shown: dict[Severity, int] = {}
    lines, dropped = [], 0
    for f, report in pairs:
        if shown.get(f.severity, 0) >= PER_LEVEL:
            dropped += 1
            continue
        shown[f.severity] = shown.get(f.severity, 0) + 1
        loc = where(f, report)
        message = f"{report.target}: {f.message}" + (f"\nfix: {f.fix}" if f.fix else "")
        lines.append(f"::{_LEVEL[f.severity]} file={_prop(relative_uri(loc.file))},line={loc.line or 1},"
                     f"title={_prop(f'{f.rule} {f.name}')}::{_data(message)}")
    if dropped:
        lines.append(f"trainer-compat: {dropped} more findings not annotated (GitHub shows {PER_LEVEL} per level)")
    lines += [r.verdict() for r in reports]
    return "\n".join(lines)
