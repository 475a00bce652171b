"""``--format sarif``: SARIF 2.1.0 as GitHub code scanning accepts it.

Project-relative URIs under ``%SRCROOT%`` (a file outside the working directory: an absolute ``file://`` URI
and no base), every rule's metadata (descriptions within GitHub's 1024 characters), fingerprints that do not
move with line numbers or transformers versions, and each skipped check as a tool execution notification.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from trainer_compat import __version__
from trainer_compat.findings import Finding, Location, Severity
from trainer_compat.render.common import clean, relative_uri, short_target, where
from trainer_compat.report import Report

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LIMIT = 1024
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_ONE_RULE = re.compile(r"(TC\d+)(?:: | suppressed at )")  # a note about one rule: "TC301: ..."
_PROBLEM = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "recommendation"}


_ROOT = "the project root: the directory of the config file, else the one trainer-compat ran in"


def _short(text: str, limit: int = LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rule(rule: Any) -> dict[str, Any]:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": _short(rule.summary.replace("`", ""))},
        "fullDescription": {"text": _short(rule.explanation.replace("`", ""))},
        "help": {"text": _short(rule.explanation.replace("`", "")),
                 "markdown": f"**{rule.code} {rule.name}**: {rule.summary}\n\n{rule.explanation}\n\n"
                             f"`trainer-compat rule {rule.code}` shows its examples."},
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {"tags": ["trainer-compat", "huggingface-trainer"], "precision": "high",
                       "problem.severity": _PROBLEM[rule.severity]},
    }


def fingerprint(finding: Finding, report: Report) -> str:
    key = "\x1f".join([finding.rule, report.target, finding.member or "", finding.feature or "",
                       str(finding.details.get("code", ""))])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def artifact(file: str) -> dict[str, str]:
    """``uri`` relative to ``%SRCROOT%``, or an absolute ``file://`` URI alone (a base with it is invalid)."""
    uri = relative_uri(file)
    if PurePosixPath(uri).is_absolute():
        return {"uri": PurePosixPath(uri).as_uri()}
    return {"uri": uri, "uriBaseId": "%SRCROOT%"}


def _physical(loc: Location) -> dict[str, Any]:
    return {"physicalLocation": {"artifactLocation": artifact(loc.file), "region": {"startLine": loc.line or 1}}}


def _notification(note: str, report: Report, index: dict[str, int]) -> dict[str, Any]:
    loc = where(None, report)
    entry: dict[str, Any] = {"level": "note",
                             "message": {"text": f"{short_target(report, loc)}: skipped {clean(note)}"},
                             "locations": [_physical(loc)], "properties": {"target": report.target}}
    one_rule = _ONE_RULE.match(note)
    if one_rule and one_rule.group(1) in index:
        entry["associatedRule"] = {"id": one_rule.group(1), "index": index[one_rule.group(1)]}
    return entry


def _result(finding: Finding, report: Report, index: dict[str, int]) -> dict[str, Any]:
    loc = where(finding, report)
    text = f"{short_target(report, loc)}: {clean(finding.message)}" + (f" Fix: {clean(finding.fix)}"
                                                                         if finding.fix else "")
    digest = fingerprint(finding, report)
    return {
        "ruleId": finding.rule,
        "ruleIndex": index[finding.rule],
        "level": _LEVEL[finding.severity],
        "message": {"text": text},
        "locations": [_physical(loc)],
        "partialFingerprints": {"primaryLocationLineHash": f"{digest[:16]}:1", "trainerCompat/v1": digest},
        "properties": {"target": report.target, "feature": finding.feature, "member": finding.member,
                       "transformers": finding.transformers_version},
    }


def render_sarif(reports: Sequence[Report]) -> str:
    from trainer_compat.catalog import all_rules

    rules = all_rules()
    index = {r.code: i for i, r in enumerate(rules)}
    run = {
        "tool": {"driver": {"name": "trainer-compat", "semanticVersion": __version__,
                            "informationUri": "https://github.com/trainer-compat/trainer-compat",
                            "rules": [_rule(r) for r in rules]}},
        "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": _ROOT}}},
        "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": [
            _notification(note, r, index) for r in reports for note in r.skipped]}],
        "results": [_result(f, r, index) for r in reports for f in r.findings],
        "properties": {"transformers": sorted({r.transformers_version for r in reports}),
                       "torch": sorted({r.torch_version for r in reports})},
    }
    return json.dumps({"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2, ensure_ascii=False)
