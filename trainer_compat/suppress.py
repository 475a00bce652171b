"""``# trainer-compat: ignore[TC301, TC1] reason`` on a target's class line.

The comment suppresses the named codes (or prefixes) for that target; a suppression that matched
nothing is reported (TC901), and so is one without a reason (TC902). Decorator lines above the class
line count as the class line.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from trainer_compat.findings import Finding, Location
from trainer_compat.report import Report
from trainer_compat.rules.reported import SUPPRESSION_RULES, SuppressionWithoutReason, UnusedSuppression

_COMMENT = re.compile(r"#\s*trainer-compat:\s*ignore\[([^\]]*)\]\s*(.*)$")
_OWN_CODES = {r.code for r in SUPPRESSION_RULES}


@dataclass(frozen=True)
class Suppression:
    codes: tuple[str, ...]
    reason: str
    location: Location


def read_suppressions(location: Location | None) -> list[Suppression]:
    """The suppression comments on the class statement at ``location`` (its decorators included)."""
    if location is None or not location.line:
        return []
    try:
        lines = Path(location.file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    found = []
    for number in range(location.line, min(len(lines), location.line + 20) + 1):
        text = lines[number - 1]
        match = _COMMENT.search(text)
        if match:
            codes = tuple(c.strip().upper() for c in match.group(1).split(",") if c.strip())
            reason = match.group(2).strip().lstrip("-:—").strip()
            found.append(Suppression(codes, reason, Location(location.file, number)))
        if text.lstrip().startswith("class "):
            break
    return found


def apply_suppressions(report: Report) -> Report:
    """A copy of ``report`` without the suppressed findings, plus TC901/TC902 for the comments themselves."""
    suppressions = read_suppressions(report.location)
    if not suppressions:
        return report
    from trainer_compat.catalog import all_rules

    known = {r.code for r in all_rules()}
    used: set[tuple[int, str]] = set()
    kept: list[Finding] = []
    notes = list(report.skipped)
    for finding in report.findings:
        hit = _matching(suppressions, finding.rule)
        if hit is None:
            kept.append(finding)
            continue
        used.add(hit)
        sup = suppressions[hit[0]]
        notes.append(f"{finding.rule} suppressed at {sup.location}: {sup.reason or 'no reason given'}")
    kept += _comment_findings(report, suppressions, used, known)
    kept.sort(key=lambda f: (-f.severity.rank, f.rule))
    return dataclasses.replace(report, findings=kept, skipped=notes)


def _matching(suppressions: list[Suppression], code: str) -> tuple[int, str] | None:
    if code in _OWN_CODES:
        return None
    for index, sup in enumerate(suppressions):
        for pattern in sup.codes:
            if code.startswith(pattern):
                return index, pattern
    return None


def _comment_findings(report: Report, suppressions: list[Suppression], used: set[tuple[int, str]],
                      known: set[str]) -> list[Finding]:
    version = report.transformers_version
    out = []
    for index, sup in enumerate(suppressions):
        for pattern in sup.codes:
            if (index, pattern) in used:
                continue
            why = "is not a rule code" if not any(k.startswith(pattern) for k in known) else \
                "was not reported for this target"
            out.append(UnusedSuppression.make(
                f"suppression of {pattern} is unused: {pattern} {why}", version=version,
                location=sup.location, fix=f"remove {pattern} from the ignore[...] comment", code=pattern))
        if not sup.reason:
            out.append(SuppressionWithoutReason.make(
                f"ignore[{', '.join(sup.codes)}] gives no reason", version=version,
                location=sup.location, fix="say after the comment why the finding does not apply"))
    return out
