"""The command line in CI: config in pyproject.toml, --select/--ignore, --fail-on, --exit-zero, --output,
suppression comments (TC901/TC902), `rule CODE`, and exit 2 with the cause for bad codes and options."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from trainer_compat.cli import main

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_MODELS = ROOT / "tests" / "golden" / "models.py"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "models.py").write_text(GOLDEN_MODELS.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "args.json").write_text('{"save_strategy": "steps"}', encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.trainer-compat]\ntargets = ["models.py:TiedWrapper", "models.py:Clean"]\nargs = "args.json"\n'
        'format = "concise"\n[tool.trainer-compat.per-target."models.py:Clean"]\nignore = ["TC3"]\n',
        encoding="utf-8")
    sub = tmp_path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)  # the config is found upwards; its paths are relative to it
    return tmp_path


def test_config_targets_args_and_format(capsys, project):
    code, out, err = run(capsys, "check")
    assert code == 1, err
    # locations relative to the config's directory (the project), wherever the check runs from
    assert re.search(r"^models\.py:\d+: TC301 \[error\] TiedWrapper:", out, re.M) and "TC101" in out, out
    assert out.strip().splitlines()[-1].startswith("Found 2 errors")


def test_command_line_wins_over_config(capsys, project):
    code, out, _ = run(capsys, "check", "--ignore", "TC1,TC301", "--format", "json")
    assert code == 0
    assert {f["rule"] for r in json.loads(out)["results"] for f in r["findings"]} == set()
    code, out, _ = run(capsys, "check", "--args", '{"save_strategy": "no"}', "--select", "TC3")
    assert code == 0 and "Found 0 errors, 1 warning in 2 targets" in out  # TC301 is a warning without saving
    code, out, _ = run(capsys, "check", "--args", '{"save_strategy": "no"}', "--select", "TC1")
    assert code == 1 and "TC301" not in out and "TC101" in out


def test_fail_on_warning_exit_zero_and_output(capsys, project):
    (project / "args.json").write_text('{"save_strategy": "no"}', encoding="utf-8")
    assert run(capsys, "check", "--ignore", "TC1")[0] == 0
    code, out, _ = run(capsys, "check", "--ignore", "TC1", "--fail-on", "warning",
                       "--output", str(project / "out.txt"))
    assert code == 1 and out == ""
    assert re.search(r"^models\.py:\d+: TC301 \[warning\] TiedWrapper:", (project / "out.txt").read_text(), re.M)
    code, _, _ = run(capsys, "check", "--exit-zero")
    assert code == 0


def test_suppression_comment_and_unused_suppression(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, _ = run(capsys, "check", "tests/golden/models.py:Suppressed", "--args",
                       '{"save_strategy": "steps"}', "--format", "json")
    result = json.loads(out)["results"][0]
    assert code == 0
    assert [f["rule"] for f in result["findings"]] == ["TC901"]  # TC301 suppressed, TC5 unused
    assert "TC5" in result["findings"][0]["message"]
    assert any("TC301 suppressed" in note and "re-tied" in note for note in result["skipped"])


def test_suppression_without_reason(capsys, tmp_path, monkeypatch):
    source = GOLDEN_MODELS.read_text(encoding="utf-8").replace(
        "ignore[TC301, TC5] weights are re-tied by our loader", "ignore[TC301]")
    (tmp_path / "m.py").write_text(source, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "check", "m.py:Suppressed", "--args", '{"save_strategy": "steps"}',
                       "--format", "concise")
    assert code == 0 and "TC902" in out and ": TC301 [" not in out  # suppressed: only its skipped line names it
    assert "skipped Suppressed: TC301 suppressed at m.py:20: no reason given" in out


BAD = [
    (["check", "x.py:M", "--select", "TC999"], "--select: unknown rule code 'TC999'"),
    (["check", "x.py:M", "--ignore", "XX1"], "--ignore: unknown rule code 'XX1'"),
    (["check", "x.py:M", "--format", "yaml"], "argument --format: invalid choice"),
    (["check", "x.py:M", "--fail-on", "info"], "argument --fail-on: invalid choice"),
    (["check", "x.py:M", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["check", "x.py:M", "--config", "nope.toml"], "--config: no such file nope.toml"),
    (["rule", "TC999"], "unknown rule 'TC999'"),
    (["rule"], "give one CODE, or --all"),
]


@pytest.mark.parametrize(("argv", "expected"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_codes_and_options_exit_2_in_one_line(capsys, argv, expected):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], err


def test_bad_config_key_exits_2(capsys, tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool.trainer-compat]\ntarget = ["m.py:M"]\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "check")
    assert code == 2 and "unknown key 'target'" in err


def test_no_targets_anywhere_exits_2(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "check")
    assert code == 2 and "no targets" in err


def test_rule_explains_itself_from_its_examples(capsys):
    code, out, _ = run(capsys, "rule", "TC301")
    assert code == 0
    assert out.startswith("TC301 unsafe-state-dict (error)")
    assert "Fires #1" in out and "Stays silent #1" in out
    assert "call site: transformers/trainer.py:" in out and "fix: " in out
    code, out, _ = run(capsys, "rule", "unused-suppression", "--format", "json")
    doc = json.loads(out)
    assert doc["code"] == "TC901" and doc["produced_by"] == "suppression comments"


def test_rule_all_lists_every_code(capsys):
    from trainer_compat.catalog import all_rules

    code, out, _ = run(capsys, "rule", "--all", "--no-run", "--format", "json")
    assert code == 0 and [d["code"] for d in json.loads(out)] == [r.code for r in all_rules()]


@pytest.fixture
def clean_env():
    """The forecast version and the adapter config reach the rules in the setup and the context: a command leaves
    the environment as it found it."""
    before = dict(os.environ)
    yield
    assert {k: v for k, v in os.environ.items() if k.startswith("TRAINER_COMPAT")} == \
        {k: v for k, v in before.items() if k.startswith("TRAINER_COMPAT")}


def _pyproject(directory: Path, extra: str) -> None:
    (directory / "models.py").write_text(GOLDEN_MODELS.read_text(encoding="utf-8"), encoding="utf-8")
    (directory / "pyproject.toml").write_text(
        f'[tool.trainer-compat]\ntargets = ["models.py:Clean"]\nformat = "json"\n{extra}', encoding="utf-8")


def test_config_transformers_version_forecasts(capsys, tmp_path, monkeypatch, clean_env):
    _pyproject(tmp_path, 'transformers-version = "4.46.3"\n')
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "check", "--no-isolate")
    assert code in (0, 1), err
    assert [r["transformers"] for r in json.loads(out)["results"]] == ["4.46.3"]


def test_config_peft_table_and_file_add_the_peft_rules(capsys, tmp_path, monkeypatch, clean_env):
    _pyproject(tmp_path, 'peft = {task_type = "CAUSAL_LM", r = 2}\n')
    monkeypatch.chdir(tmp_path)
    _, out, _ = run(capsys, "check", "--no-isolate")
    assert "TC1001" in {f["rule"] for r in json.loads(out)["results"] for f in r["findings"]}
    (tmp_path / "lora.json").write_text('{"task_type": "CAUSAL_LM"}', encoding="utf-8")
    _pyproject(tmp_path, 'peft = "lora.json"\n')
    _, out, _ = run(capsys, "check", "--no-isolate")
    assert "TC1001" in {f["rule"] for r in json.loads(out)["results"] for f in r["findings"]}
    _pyproject(tmp_path, "")
    _, out, _ = run(capsys, "check", "--no-isolate")
    assert "TC1001" not in {f["rule"] for r in json.loads(out)["results"] for f in r["findings"]}


@pytest.mark.parametrize(("extra", "expected"), [
    ('transformers-version = "banana"\n', "transformers-version: 'banana' is not a version"),
    ('transformers-version = "4.10.0"\n', "older than"),
    ('peft = "missing.json"\n', "peft: no such file missing.json"),
    ("peft = 3\n", "peft must be a table"),
])
def test_bad_version_or_peft_in_config_exits_2(extra, expected, *, capsys, tmp_path, monkeypatch, clean_env):
    _pyproject(tmp_path, extra)
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "check")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and expected in err, err
