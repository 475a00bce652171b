"""Every output format is a view of the same reports: golden files, SARIF against the 2.1.0 schema,
GitHub's annotation limits. Goldens are normalised (transformers/torch versions, line numbers inside the
installed transformers, one member row whose need is version-specific) so they hold on 4.46, 4.57 and 5.x.

    TC_UPDATE_GOLDEN=1 python -m pytest tests/test_formats.py   # rewrite the goldens after a deliberate change
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from trainer_compat.cli import FORMATS, main
from trainer_compat.config import Config, settings_for
from trainer_compat.render import RENDERERS
from trainer_compat.findings import Finding, Severity
from trainer_compat.render.github import PER_LEVEL, render_github
from trainer_compat.report import Report
from trainer_compat.workflow import check_target

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
TARGETS = [f"tests/golden/models.py:{name}" for name in ("TiedWrapper", "Suppressed", "Clean")]
ARGS = ["--args", '{"save_strategy": "steps"}']
SUFFIX = {"concise": "txt", "full": "txt", "json": "json", "sarif": "sarif", "github": "txt", "junit": "xml"}
# The SARIF 2.1.0 schema as OASIS publishes it (oasis-tcs/sarif-spec, Schemata/sarif-schema-2.1.0.json).
SCHEMA = GOLDEN / "sarif-schema-2.1.0.json"


def normalize(text: str) -> str:
    text = re.sub(r"transformers \d+\.\d+\.\d+\S*", "transformers X.Y.Z", text)
    text = re.sub(r'"\d+\.\d+\.\d+[^"]*"', '"X.Y.Z"', text)
    text = re.sub(r"transformers/([\w/]+)\.py:\d+", r"transformers/\1.py:N", text)
    return re.sub(r"(?m)^\s+accepts_loss_kwargs\s+missing.*\n", "", text)


def normalize_json(text: str) -> str:
    doc = json.loads(text)
    for result in doc["results"]:
        result["members"] = [m for m in result["members"] if m["name"] != "accepts_loss_kwargs"]
        for finding in result["findings"]:
            if finding["call_site"]:  # a line of the installed transformers
                finding["call_site"]["line"] = 0
    return normalize(json.dumps(doc, indent=2))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, str]:
    """Each format of the golden targets: sarif through the command line (--output), the others rendered
    from the same reports, as the command line renders them."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        path = tmp_path_factory.mktemp("formats") / "out.sarif"
        assert main(["check", *TARGETS, *ARGS, "--format", "sarif", "--output", str(path)]) == 1
        out = {"sarif": path.read_text(encoding="utf-8").rstrip("\n")}
        reports = [check_target(settings_for(t, Config(), {"args": json.loads(ARGS[1])})) for t in TARGETS]
        out.update({fmt: render(reports) for fmt, render in RENDERERS.items() if fmt != "sarif"})
    finally:
        os.chdir(cwd)
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden(rendered, fmt):
    text = normalize_json(rendered[fmt]) if fmt == "json" else normalize(rendered[fmt])
    golden = GOLDEN / f"report.{fmt}.{SUFFIX[fmt]}"
    if os.environ.get("TC_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), f"{golden.name} differs (TC_UPDATE_GOLDEN=1 rewrites it)"


def test_sarif_validates_against_the_2_1_0_schema(rendered):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$id"].endswith("sarif-schema-2.1.0.json")
    doc = json.loads(rendered["sarif"])
    jsonschema.Draft7Validator(schema).validate(doc)
    broken = json.loads(rendered["sarif"])
    broken["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):  # the validation can fail
        jsonschema.Draft7Validator(schema).validate(broken)


def test_sarif_meets_github_code_scanning(rendered):
    run = json.loads(rendered["sarif"])["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len({r["id"] for r in rules}) == len(rules)
    for rule in rules:
        assert len(rule["shortDescription"]["text"]) <= 1024 and len(rule["fullDescription"]["text"]) <= 1024
        assert rule["help"]["text"] and rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    results = run["results"]
    assert {r["ruleId"] for r in results} == {"TC101", "TC102", "TC301", "TC901"}
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert uri == "tests/golden/models.py"  # repo-relative
        assert result["partialFingerprints"]["primaryLocationLineHash"]
    prints = [r["partialFingerprints"]["trainerCompat/v1"] for r in results]
    assert len(set(prints)) == len(prints)


def test_junit_counts_every_rule_per_target(rendered):
    root = ET.fromstring(rendered["junit"])
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == TARGETS
    tied = suites[0]
    failed = {c.get("name").split()[0] for c in tied.iter("testcase") if c.find("failure") is not None}
    assert failed == {"TC101", "TC301"}
    assert int(root.get("tests")) == sum(int(s.get("tests")) for s in suites) > 40
    assert int(root.get("failures")) == 2


def test_concise_is_one_line_per_finding(rendered):
    lines = rendered["concise"].splitlines()
    assert len(lines) == 5  # four findings and the summary
    assert all(re.match(r"^tests/golden/models\.py:\d+: TC\d{3} ", line) for line in lines[:-1])


def _finding(code: str, severity: Severity, text: str = "bad, really: 100%\nsecond line") -> Finding:
    return Finding(rule=code, name="some-rule", severity=severity, message=text)


def test_github_escapes_and_caps_annotations_per_level():
    findings = [_finding("TC001", Severity.ERROR)] * (PER_LEVEL + 3) + [_finding("TC201", Severity.WARNING)]
    report = Report(target="pkg/m.py:M", transformers_version="5", torch_version="2", trainer="trainer",
                    features=("train",), findings=findings)
    lines = render_github([report]).splitlines()
    errors = [line for line in lines if line.startswith("::error ")]
    assert len(errors) == PER_LEVEL
    assert sum(line.startswith("::warning ") for line in lines) == 1
    assert "3 more findings not annotated" in "\n".join(lines)
    assert "100%25%0Asecond line" in errors[0] and "file=pkg/m.py,line=1," in errors[0]
