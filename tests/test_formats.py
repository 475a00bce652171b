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
from trainer_compat.findings import Finding, Severity
from trainer_compat.render import RENDERERS
from trainer_compat.render.github import PER_LEVEL, render_github
from trainer_compat.report import Report
from trainer_compat.workflow import check_target

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
TARGETS = [f"tests/golden/models.py:{name}" for name in ("TiedWrapper", "Suppressed", "Clean", "NeedsArgs", "tiny_lm")]
ARGS = ["--args", '{"save_strategy": "steps"}']
SUFFIX = {"concise": "txt", "full": "txt", "json": "json", "sarif": "sarif", "github": "txt", "junit": "xml"}
# The SARIF 2.1.0 schema as OASIS publishes it (oasis-tcs/sarif-spec, Schemata/sarif-schema-2.1.0.json).
SCHEMA = GOLDEN / "sarif-schema-2.1.0.json"
# The JUnit report structure CI dashboards read (our own schema of the common format: no file/line on testcase,
# no skipped on testsuites).
JUNIT_XSD = GOLDEN / "junit.xsd"


def normalize(text: str) -> str:
    text = re.sub(r"transformers \d+\.\d+\.\d+\S*", "transformers X.Y.Z", text)
    text = re.sub(r'"\d+\.\d+\.\d+[^"]*"', '"X.Y.Z"', text)
    text = re.sub(r"transformers/([\w/]+)\.py:\d+", r"transformers/\1.py:N", text)
    text = re.sub(r"(?m)^\s+accepts_loss_kwargs\s+missing.*\n", "", text)
    return re.sub(r"(?<=\S) {2,}", "  ", text)  # column widths follow which members a release needs


def normalize_json(text: str) -> str:
    doc = json.loads(text)
    for result in doc["results"]:
        result["members"] = [m for m in result["members"] if m["name"] != "accepts_loss_kwargs"]
        if result["target"].endswith(":tiny_lm"):  # a transformers model: its members differ between releases
            result["members"] = []
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
        reports = [check_target(settings_for(t, Config(), {"args": json.loads(ARGS[1])})).with_not_run(
            probe=False, peft=False, sft=False, data=False) for t in TARGETS]  # as the command line notes them
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


def _cases(suite: ET.Element, child: str) -> set[str]:
    return {c.get("name").split()[0] for c in suite.iter("testcase") if c.find(child) is not None}


def test_junit_skips_the_rules_that_did_not_run(rendered):
    """Rules whose option was not given, rules the unbuilt class could not feed, suppressed rules: <skipped/>."""
    suites = {s.get("name"): s for s in ET.fromstring(rendered["junit"]).findall("testsuite")}
    tied, suppressed, needs_args = (suites[f"tests/golden/models.py:{n}"] for n in ("TiedWrapper", "Suppressed",
                                                                                        "NeedsArgs"))
    gated = {"TC600", "TC601", "TC609", "TC1204", "TC701", "TC704", "TC1001", "TC1005", "TC1101", "TC1201",
             "TC1203", "TC1206"}
    assert gated <= _cases(tied, "skipped")
    assert "TC1004" not in _cases(tied, "skipped") and "TC001" not in _cases(tied, "skipped")  # they ran
    assert "TC301" in _cases(suppressed, "skipped")  # suppressed on the class line
    assert "TC301" in _cases(needs_args, "skipped")  # the state dict needs an instance
    assert int(tied.get("skipped")) == len(_cases(tied, "skipped"))
    probe_case = next(c for c in tied.iter("testcase") if c.get("name").startswith("TC603 "))
    assert "--probe" in probe_case.find("skipped").get("message")


def test_junit_validates_against_the_junit_xsd(rendered):
    xmlschema = pytest.importorskip("xmlschema")
    schema = xmlschema.XMLSchema(str(JUNIT_XSD))
    schema.validate(rendered["junit"])
    broken = ET.fromstring(rendered["junit"])
    case = broken.find("testsuite/testcase")
    case.set("file", "tests/golden/models.py")  # what the renderer used to write: the XSD has no file on testcase
    with pytest.raises(xmlschema.XMLSchemaValidationError):  # the validation can fail
        schema.validate(ET.tostring(broken, encoding="unicode"))


def test_concise_is_one_line_per_finding_and_per_skipped_check(rendered):
    lines = rendered["concise"].splitlines()
    findings = [line for line in lines if re.match(r"^tests/golden/models\.py:\d+: TC\d{3} ", line)]
    skipped = [line for line in lines if re.match(r"^tests/golden/models\.py:\d+: skipped ", line)]
    assert len(findings) == 4 and len(skipped) == 3 and len(lines) == 4 + 3 + 1  # and the summary
    assert lines[-1] == "Found 2 errors, 2 warnings in 5 targets (1 not compatible; 3 checks skipped)."
    assert all("tests/golden/models.py:TiedWrapper" not in line for line in lines)  # the file is said once
    assert any("NeedsArgs: instance checks: NeedsArgs was not built" in line for line in skipped)


def test_every_human_format_closes_with_the_summary(rendered):
    for fmt in ("concise", "full", "github"):
        assert rendered[fmt].splitlines()[-1] == rendered["concise"].splitlines()[-1], fmt


def test_skipped_checks_reach_github_and_sarif(rendered):
    notices = [line for line in rendered["github"].splitlines() if line.startswith("::notice ")]
    assert len(notices) == 3 and all("title=trainer-compat%3A check skipped" in n for n in notices)
    run = json.loads(rendered["sarif"])["runs"][0]
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert len(notes) == 3 and run["invocations"][0]["executionSuccessful"] is True
    assert {n.get("associatedRule", {}).get("id") for n in notes} == {"TC301", None}


def test_a_factory_points_at_its_own_definition(rendered):
    """tiny_lm returns a transformers model: its places are the factory's def line, never site-packages."""
    doc = json.loads(rendered["sarif"])
    for fmt in ("concise", "full", "github", "junit", "sarif"):
        assert "site-packages/transformers/models" not in rendered[fmt].replace("\\", "/"), fmt
    assert "(tests/golden/models.py:52)" in rendered["full"]  # the features line of tiny_lm
    for result in doc["runs"][0]["results"]:
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"] == "%SRCROOT%"


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


# -- the terminal: rich's own detection, soft wrap off a terminal, -q/-v ---------------------------------------

LONG = ("the wrapper's gradient_checkpointing_enable returns without enabling anything, so the call Trainer "
        "makes, model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=...), leaves every block "
        "storing its activations")


def _report(**kwargs) -> Report:
    from trainer_compat.report import MemberRow

    defaults = dict(target="pkg/m.py:M", transformers_version="5", torch_version="2", trainer="trainer",
                    features=("train",), findings=[_finding("TC402", Severity.WARNING, LONG)],
                    members=[MemberRow("forward", "defined", "defined at pkg/m.py:3", ("train",)),
                             MemberRow("generate", "missing", "missing", ()),
                             MemberRow("config", "inherited", "inherited from _trainer_compat_target_123.Base", ())],
                    skipped=["TC301: the state dict needs an instance"])
    return Report(**{**defaults, **kwargs})


def test_full_off_a_terminal_is_soft_wrapped_whole_and_summarised():
    from trainer_compat.render import render_terminal

    text = render_terminal([_report()])
    assert LONG in text  # one line, never cut mid-word
    assert all(line == line.rstrip() for line in text.splitlines())  # no trailing spaces
    assert "\x1b[" not in text
    assert "generate" not in text and "config" not in text  # members the arguments do not need: only with -v
    assert "skipped TC301: the state dict needs an instance" in text
    assert text.splitlines()[-1] == "Found 0 errors, 1 warning in 1 target (0 not compatible; 1 check skipped)."
    verbose = render_terminal([_report()], verbosity=1)
    assert "generate" in verbose and "_trainer_compat_target_" not in verbose and "<target file>:Base" not in verbose
    quiet = render_terminal([_report()], verbosity=-1)
    assert "skipped" not in quiet.splitlines()[1:-1] and "member" not in quiet and LONG in quiet


def test_full_on_a_terminal_wraps_at_words_within_the_width():
    from trainer_compat.render import render_terminal

    text = render_terminal([_report()], width=100)  # the 100-column pane of issue #12
    assert all(len(line) <= 100 for line in text.splitlines()) and len(text.splitlines()) > 8
    words = " ".join(text.split())
    assert "model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=...)," in words


@pytest.mark.parametrize("env, force, expected", [
    ({}, False, False),  # not a terminal: no colour
    ({"FORCE_COLOR": "1"}, False, True),
    ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, False, False),  # NO_COLOR wins over everything but --color
    ({"NO_COLOR": "1"}, True, True),  # --color forces
])
def test_colour_follows_no_color_force_color_and_the_flag(monkeypatch, env, force, expected):
    import io

    from trainer_compat.render.full import Terminal

    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    terminal = Terminal.detect(io.StringIO(), force_color=force)
    assert terminal.color is expected and terminal.width is None  # a pipe never gets a width


def test_a_terminal_gets_rich_width_from_columns(monkeypatch):
    import io

    from trainer_compat.render.full import Terminal

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("COLUMNS", "72")
    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal = Terminal.detect(Tty())
    assert terminal.width == 72 and terminal.color


def test_sarif_outside_the_working_directory_has_an_absolute_uri_and_no_base(tmp_path):
    from trainer_compat.findings import Location
    from trainer_compat.render.sarif import render_sarif

    outside = tmp_path / "m.py"
    finding = Finding(rule="TC301", name="unsafe-state-dict", severity=Severity.ERROR, message="m",
                      location=Location(str(outside), 4))
    doc = json.loads(render_sarif([_report(target=f"{outside}:M", findings=[finding])]))
    artifact = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": outside.as_uri()}


def test_progress_only_on_a_terminal():
    import io

    from trainer_compat.render.progress import TargetProgress

    piped = io.StringIO()
    progress = TargetProgress(["a.py:A", "b.py:B"], stream=piped)
    progress.start_target(0)
    progress.done_target(0, _report())
    assert piped.getvalue() == ""
    shown = TargetProgress(["a.py:A", "b.py:B"], stream=piped, enabled=True)
    shown.start_target(1)
    shown.done_target(1, _report())
    assert piped.getvalue().splitlines()[0] == "trainer-compat: [2/2] checking b.py:B ..."
    assert "[2/2] checking b.py:B: compatible (0 errors, 1 warning)" in piped.getvalue()
