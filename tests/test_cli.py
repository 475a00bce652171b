"""The command line: verdicts and exit codes, JSON shape, and one clear line for every kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainer_compat.cli import main
from trainer_compat.errors import TargetError

ROOT = Path(__file__).resolve().parent.parent
FIX = "tests/fixtures"
SEED = "examples/higgs_audio_wrapper.py"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_seed_example_is_incompatible_with_checkpointing(capsys):
    code, out, err = run(capsys, "check", f"{SEED}:HiggsAudioModelWrapper", "--args", "examples/train_args.json",
                         "--format", "json")
    assert code == 1, err
    doc = json.loads(out)
    assert set(doc) >= {"transformers", "torch", "results"}
    (result,) = doc["results"]
    assert result["compatible"] is False
    rules = {f["rule"] for f in result["findings"]}
    assert {"TC001", "TC101", "TC201", "TC301"} <= rules
    for finding in result["findings"]:
        assert set(finding) >= {"rule", "severity", "member", "feature", "message", "fix"}
        assert finding["severity"] in ("error", "warning", "info")
        assert finding["transformers_version"] == doc["transformers"]


def test_compatible_target_exits_zero_in_every_form(capsys):
    for name in ("Fine", "make_fine", "fine_instance"):
        code, out, err = run(capsys, "check", f"{FIX}/odd_targets.py:{name}")
        assert code == 0, out + err
        assert "compatible with transformers" in out


def test_module_path_target_and_init_kwargs(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / FIX))
    code, out, _ = run(capsys, "check", "odd_targets:Fine", "--init-kwargs", '{"tie": true}',
                       "--args", '{"save_strategy": "steps"}', "--format", "text")
    assert code == 1 and "TC301" in out


def test_class_that_needs_arguments_is_checked_at_class_level(capsys):
    code, out, _ = run(capsys, "check", f"{FIX}/odd_targets.py:NeedsPath", "--args",
                       '{"gradient_checkpointing": true}', "--format", "json")
    result = json.loads(out)["results"][0]
    assert code == 1
    assert {"TC001", "TC101"} <= {f["rule"] for f in result["findings"]}
    assert any("model_path" in note for note in result["skipped"])


BAD_INPUT = [
    (["check", "no_such_package_xyz.models:Model"], "no module named 'no_such_package_xyz'"),
    (["check", f"{FIX}/broken_syntax.py:Model"], "syntax error in"),
    (["check", f"{FIX}/imports_missing.py:Model"], "no module named 'a_package_that_is_not_installed'"),
    (["check", f"{FIX}/odd_targets.py:Missing"], "has no attribute 'Missing'"),
    (["check", f"{FIX}/odd_targets.py:RaisesInInit"], "raised RuntimeError: CUDA is not available"),
    (["check", f"{FIX}/odd_targets.py:NotAModule"], "is not a torch.nn.Module subclass"),
    (["check", f"{FIX}/odd_targets.py:factory_returning_a_string"], "returned a str"),
    (["check", f"{FIX}/no_such_file.py:Model"], "no such file"),
    (["check", "no_colon_here"], "expected module:Name"),
    (["check", f"{FIX}/odd_targets.py:Fine", "--args", "{not json"], "invalid JSON"),
    (["check", f"{FIX}/odd_targets.py:Fine", "--args", '{"not_a_field": 1}'], "not_a_field"),
    (["check", f"{FIX}/odd_targets.py:Fine", "--args", '{"save_strategy": "sometimes"}'], "sometimes"),
    (["check", f"{FIX}/odd_targets.py:Fine", "--args", "missing.yaml"], "neither a JSON object nor"),
    (["check", f"{FIX}/odd_targets.py:Fine", "--init-kwargs", "[1]"], "expected a JSON object"),
]


@pytest.mark.parametrize(("argv", "expected"), BAD_INPUT, ids=[" ".join(a[1:])[-40:] for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, expected):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("trainer-compat: error: ")
    assert expected in lines[0]
    assert "Traceback" not in err


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(TargetError, match=r"RaisesInInit.* raised RuntimeError: CUDA is not available"):
        main(["check", f"{FIX}/odd_targets.py:RaisesInInit", "--debug"])


def test_unknown_option_and_trainer_kind_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check", "x:y", "--no-such-flag"])
    assert exc.value.code == 2
    assert main(["check", f"{SEED}:HiggsAudioModelWrapper", "--trainer", "no-such-trainer"]) == 2
    assert "unknown trainer 'no-such-trainer'" in capsys.readouterr().err


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "trainer_compat", "check", f"{SEED}:HiggsAudioModelWrapper",
                           "--args", "examples/train_args.json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "NOT compatible with transformers" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_reader_that_leaves_early_gets_no_traceback_and_the_verdict_stays(tmp_path):
    """`trainer-compat check ... | head -1`: the pipe closes before the report is written."""
    proc = subprocess.Popen([sys.executable, "-m", "trainer_compat", "check", f"{SEED}:HiggsAudioModelWrapper",
                             "--no-isolate", "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and b"Traceback" not in err and b"error" not in err, err


LOUD = '''
import os
import torch.nn as nn
print("hello at import")

class Loud(nn.Module):
    def __init__(self):
        super().__init__()
        print("hello from __init__")
        os.write(1, b"native write\\n")
        self.lin = nn.Linear(2, 2)

    def forward(self, x, labels=None):
        return {"loss": self.lin(x).sum()}
'''


@pytest.mark.parametrize("isolation", ["--no-isolate", "--isolate"])
@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_what_a_target_prints_never_reaches_machine_readable_stdout(tmp_path, fmt, isolation):
    (tmp_path / "loud.py").write_text(LOUD, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "trainer_compat", "check", f"{tmp_path / 'loud.py'}:Loud",
                             "--format", fmt, isolation], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)  # nothing but the report
    if isolation == "--no-isolate":  # (an isolated child's own output does not come back)
        assert "hello from __init__" in result.stderr and "native write" in result.stderr


def test_both_pre_commit_hooks_run_and_gate():
    import shlex

    import yaml

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert {h["id"] for h in hooks} == {"trainer-compat", "trainer-compat-static"}
    for hook in hooks:
        argv = shlex.split(hook["entry"])
        assert argv[0] == "trainer-compat"
        proc = subprocess.run([sys.executable, "-m", "trainer_compat", *argv[1:], f"{SEED}:HiggsAudioModelWrapper",
                               "--args", "examples/train_args.json"], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 1, (hook["id"], proc.stderr)
        assert "TC001" in proc.stdout, (hook["id"], proc.stdout)
