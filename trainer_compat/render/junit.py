"""``--format junit``: one <testsuite> per target, one <testcase> per (target, rule), valid against the JUnit
XSD that Jenkins and most dashboards use (tests/golden/junit-10.xsd).

A rule that ran and reported nothing is a passing (empty) testcase; a rule that did not run (its option was
not given, the class could not be built, a suppression comment) is <skipped/> with the reason; a finding at
or above ``fail_on`` is a <failure>, a probe phase that raised (TC601) an <error>; lesser findings go to
<system-out>. Where a testcase points is in its text (the XSD has no file or line on testcase).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from trainer_compat.findings import Finding, Severity
from trainer_compat.render.common import clean, place, where
from trainer_compat.report import Report

_CRASH = {"TC601"}


def _codes(report: Report) -> list[tuple[str, str]]:
    """The model rules and the preflight and suppression rules (report-level isolation rules when reported)."""
    from trainer_compat.catalog import all_rules
    from trainer_compat.rules.isolation import ISOLATION_RULES

    reported = report.codes()
    isolation = {r.code for r in ISOLATION_RULES}
    return [(r.code, r.name) for r in all_rules() if r.code not in isolation or r.code in reported]


def _text(findings: list[Finding], report: Report) -> str:
    parts = []
    for f in findings:
        parts.append(f"{place(where(f, report))}: {f.rule} [{f.severity.value}] {clean(f.message)}"
                     + (f"\nfix: {clean(f.fix)}" if f.fix else ""))
    return "\n".join(parts)


def _suite(report: Report, floor: int) -> tuple[ET.Element, dict[str, int]]:
    suite = ET.Element("testsuite", name=report.target)
    tally = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    codes = _codes(report)
    not_run = report.skipped_rules([code for code, _ in codes])
    for code, name in codes:
        findings = [f for f in report.findings if f.rule == code]
        case = ET.SubElement(suite, "testcase", name=f"{code} {name}", classname=report.target)
        tally["tests"] += 1
        failing = [f for f in findings if f.severity.rank >= floor]
        if failing:
            kind = "error" if code in _CRASH else "failure"
            tally["errors" if kind == "error" else "failures"] += 1
            ET.SubElement(case, kind, message=clean(failing[0].message),
                          type=failing[0].severity.value).text = _text(findings, report)
        elif findings:
            ET.SubElement(case, "system-out").text = _text(findings, report)
        elif code in not_run:
            tally["skipped"] += 1
            ET.SubElement(case, "skipped", message=clean(not_run[code]))
    for key, value in tally.items():
        suite.set(key, str(value))
    if report.skipped:
        ET.SubElement(suite, "system-out").text = "\n".join(f"skipped {clean(note)}" for note in report.skipped)
    return suite, tally


def render_junit(reports: Sequence[Report], *, fail_on: str = "error") -> str:
    floor = Severity(fail_on).rank
    root = ET.Element("testsuites", name="trainer-compat")
    totals = {"tests": 0, "failures": 0, "errors": 0}  # the XSD has no skipped count on <testsuites>
    for report in reports:
        suite, tally = _suite(report, floor)
        root.append(suite)
        for key in totals:
            totals[key] += tally[key]
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
