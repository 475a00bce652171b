"""``--format junit``: one <testsuite> per target, one <testcase> per (target, rule).

A rule that reported nothing is a passing (empty) testcase, so dashboards count every check; a finding
at or above ``fail_on`` is a <failure>, a probe phase that raised (TC601) an <error>; lesser findings go
to <system-out>.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from trainer_compat.findings import Finding, Severity
from trainer_compat.render.common import relative_uri, where
from trainer_compat.report import Report

_CRASH = {"TC601"}


def _codes(report: Report) -> list[tuple[str, str]]:
    from trainer_compat.catalog import all_rules
    from trainer_compat.rules import ALL_RULES

    reported = report.codes()
    model_codes = {r.code for r in ALL_RULES}
    return [(r.code, r.name) for r in all_rules() if r.code in model_codes or r.code in reported]


def _text(findings: list[Finding], report: Report) -> str:
    parts = []
    for f in findings:
        loc = where(f, report)
        parts.append(f"{relative_uri(loc.file)}:{loc.line or 1}: {f.rule} [{f.severity.value}] {f.message}"
                     + (f"\nfix: {f.fix}" if f.fix else ""))
    return "\n".join(parts)


def _suite(report: Report, floor: int) -> tuple[ET.Element, dict[str, int]]:
    suite = ET.Element("testsuite", name=report.target)
    tally = {"tests": 0, "failures": 0, "errors": 0}
    for code, name in _codes(report):
        findings = [f for f in report.findings if f.rule == code]
        case = ET.SubElement(suite, "testcase", name=f"{code} {name}", classname=report.target)
        if report.location:
            case.set("file", relative_uri(report.location.file))
            case.set("line", str(report.location.line or 1))
        tally["tests"] += 1
        failing = [f for f in findings if f.severity.rank >= floor]
        if failing:
            kind = "error" if code in _CRASH else "failure"
            tally["errors" if kind == "error" else "failures"] += 1
            ET.SubElement(case, kind, message=failing[0].message[:300],
                          type=failing[0].severity.value).text = _text(findings, report)
        elif findings:
            ET.SubElement(case, "system-out").text = _text(findings, report)
    for key, value in tally.items():
        suite.set(key, str(value))
    suite.set("skipped", "0")
    return suite, tally


def render_junit(reports: Sequence[Report], *, fail_on: str = "error") -> str:
    floor = Severity(fail_on).rank
    root = ET.Element("testsuites", name="trainer-compat")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for report in reports:
        suite, tally = _suite(report, floor)
        root.append(suite)
        for key in totals:
            totals[key] += tally[key]
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("skipped", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
