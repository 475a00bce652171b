"""``--format github``: GitHub Actions workflow commands (annotations on the pull request's files).

GitHub shows at most 10 annotations per level and step, so the most severe come first and the rest are
counted in one line. Each skipped check is a ``::notice`` (after the findings' notices; past the cap, a plain
log line). Then one verdict line per target and the summary.
"""

from __future__ import annotations

from collections.abc import Sequence

from trainer_compat.findings import Severity
from trainer_compat.render.common import clean, relative_uri, short_target, summary, where
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
        message = f"{short_target(report, loc)}: {clean(f.message)}" + (f"\nfix: {clean(f.fix)}" if f.fix else "")
        lines.append(_command(_LEVEL[f.severity], loc.file, loc.line, f"{f.rule} {f.name}", message))
    if dropped:
        lines.append(f"trainer-compat: {dropped} more findings not annotated (GitHub shows {PER_LEVEL} per level)")
    for report in reports:
        loc = where(None, report)
        for note in report.skipped:
            text = f"{short_target(report, loc)}: {clean(note)}"
            if shown.get(Severity.INFO, 0) >= PER_LEVEL:
                lines.append(f"trainer-compat: skipped {report.target}: {clean(note)}")
                continue
            shown[Severity.INFO] = shown.get(Severity.INFO, 0) + 1
            lines.append(_command("notice", loc.file, loc.line, "trainer-compat: check skipped", text))
    lines += [r.verdict() for r in reports]
    lines.append(summary(reports))
    return "\n".join(lines)


def _command(level: str, file: str, line: int | None, title: str, message: str) -> str:
    return (f"::{level} file={_prop(relative_uri(file))},line={line or 1},title={_prop(title)}::"
            f"{_data(message)}")
