"""``--format sarif``: SARIF 2.1.0 as GitHub code scanning accepts it.

Repo-relative URIs under ``%SRCROOT%``, every rule's metadata (descriptions within GitHub's 1024
characters), and fingerprints that do not move with line numbers or transformers versions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from trainer_compat import __version__
from trainer_compat.findings import Finding, Severity
from trainer_compat.render.common import relative_uri, where
from trainer_compat.report import Report

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LIMIT = 1024
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_PROBLEM = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "recommendation"}


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


def _result(finding: Finding, report: Report, index: dict[str, int]) -> dict[str, Any]:
    loc = where(finding, report)
    text = f"{report.target}: {finding.message}" + (f" Fix: {finding.fix}" if finding.fix else "")
    digest = fingerprint(finding, report)
    return {
        "ruleId": finding.rule,
        "ruleIndex": index[finding.rule],
        "level": _LEVEL[finding.severity],
        "message": {"text": text},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": relative_uri(loc.file), "uriBaseId": "%SRCROOT%"},
            "region": {"startLine": loc.line or 1}}}],
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
        "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "the directory trainer-compat ran in"}}},
        "results": [_result(f, r, index) for r in reports for f in r.findings],
        "properties": {"transformers": sorted({r.transformers_version for r in reports}),
                       "torch": sorted({r.torch_version for r in reports})},
    }
    return json.dumps({"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2, ensure_ascii=False)
