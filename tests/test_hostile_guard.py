"""The guard around target code (issues #15, #16): BaseExceptions, stdin, breakpoints, alarms, deadlines, state
leaks, shadowing, forks, threads, isolation's channel and children. tests/hostile/guarded.py holds the targets."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from trainer_compat.cli import main

ROOT = Path(__file__).resolve().parent.parent
H = ROOT / "tests" / "hostile"
G = f"{H}/guarded.py"
FINE = f"{H}/runtime.py:Fine"
CKPT = '{"gradient_checkpointing": true, "save_strategy": "steps"}'


def _files() -> set[str]:
    return {str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "hostile").rglob("*") if "__pycache__" not in p.parts}


def _json(capsys, *argv: str) -> tuple[int, dict, str]:
    code = main(["check", *argv, "--format", "json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, {r["target"]: r for r in json.loads(out)["results"]}, err


def _rules(result: dict) -> set[str]:
    return {f["rule"] for f in result["findings"]}


CHECKED = {  # target -> rules its findings must hold (the run must reach a verdict)
    "ConfigSysExit0": {"TC003"}, "KeysSysExit3": set(), "GetattrKeyboardInterrupt": {"TC003"},
    "GetattrGeneratorExit": {"TC003"}, "InitReadsStdin": set(), "InitReadsFd0": set(), "InitAlarm": set(),
    "InitSigintHandler": set(), "factory_breakpoint": set(), "NoopGetattr": set(),
}


@pytest.mark.parametrize("mode", [[], ["--isolate", "--timeout", "30"]], ids=["default", "isolate"])
def test_base_exceptions_stdin_breakpoints_and_alarms_of_target_code_never_own_the_outcome(capsys, mode):
    before, handler = _files(), signal.getsignal(signal.SIGALRM)
    targets = [f"{G}:{name}" for name in CHECKED]
    code, results, _ = _json(capsys, *targets, "--args", CKPT, *mode)
    assert code == 1 and list(results) == targets
    for name, rules in CHECKED.items():
        assert rules <= _rules(results[f"{G}:{name}"]), name
    time.sleep(0.3)  # InitAlarm's 0.2 s alarm would have fired here with its sys.exit(0) handler
    assert signal.getsignal(signal.SIGALRM) is handler and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert sys.breakpointhook is sys.__breakpointhook__ and _files() == before


BAD = [
    ([f"{G}:InitKeyboardInterrupt"], "building it raised KeyboardInterrupt: from __init__"),
    ([f"{G}:InitGeneratorExit"], "building it raised GeneratorExit"),
    ([f"{G}:InitInput"], "raised EOFError"),
    ([f"{H}/import_input.py:Model"], "raised EOFError"),
    ([FINE, "--args", f"{H}/alias_bomb.yaml"], "alias bomb"),
    ([FINE, "--args", f"{H}/alias_bomb.yaml", "--static"], "alias bomb"),
    ([FINE, "--args", f"{H}/binary_args.json"], "not a UTF-8 text file"),
    ([FINE, "--args", f"{H}/deep.json"], "JSON nested too deeply"),
    ([FINE, "--init-kwargs", "[" * 100000], "--init-kwargs"),
    ([FINE, "--init-kwargs", '"str"'], "expected a JSON object"),
    ([f"{H}/runtime.py:" + "F" * 5000], "characters: expected module:Name"),
    (["x" * 5000 + ".py:Model"], "characters"),
    ([FINE, "--args", "y" * 5000 + ".yaml"], "neither a JSON object"),
]


@pytest.mark.parametrize(("argv", "expected"), BAD, ids=[" ".join(a)[-40:] for a, _ in BAD])
def test_bad_input_from_target_code_or_files_is_one_line(capsys, argv, expected):
    before = _files()
    code = main(["check", *argv])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if "trainer-compat" in line]  # input()'s prompt is the target's
    assert code == 2 and out == "" and "Traceback" not in err, err
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]) and "trainer-compat: error: " in lines[0], err
    assert expected in lines[0] and _files() == before


CONFIGS = [
    ('probe = "false"', "probe must be true or false, not a string 'false'"),
    ('init-kwargs = "str"', "init-kwargs must be a table"),
    ("sample = 5", "sample must be a string"),
    ("world-size = true", "world-size must be an integer"),
    ('[tool.trainer-compat.per-target."a.py:M"]\nprobe = 1', "probe must be true or false"),
]


@pytest.mark.parametrize(("line", "expected"), CONFIGS, ids=[c[0][:20] for c in CONFIGS])
def test_config_values_are_type_checked(capsys, tmp_path, monkeypatch, line, expected):
    (tmp_path / "pyproject.toml").write_text(f"[tool.trainer-compat]\ntargets = []\n{line}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["check", FINE]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_a_non_utf8_pyproject_is_one_line(capsys, tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_bytes(b"[tool.trainer-compat]\ntargets = ['caf\xe9.py:M']\n")
    monkeypatch.chdir(tmp_path)
    assert main(["check", FINE]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_deadlines_are_findings_in_every_mode_and_the_run_goes_on(capsys):
    targets = [f"{G}:InitSleeps", f"{G}:ParametersForever", FINE]
    start = time.monotonic()
    code, results, _ = _json(capsys, *targets, "--timeout", "1.5")
    assert code == 1 and time.monotonic() - start < 30
    assert [f["rule"] for f in results[targets[0]]["findings"]] == ["TC801"]
    assert [f["rule"] for f in results[targets[1]]["findings"]] == ["TC801"]
    assert results[FINE]["compatible"] is True


def test_a_forward_that_never_returns_is_a_deadline_under_the_probe(capsys):
    code, results, _ = _json(capsys, f"{G}:ForwardSleeps", "--probe", "--timeout", "4")
    finding = results[f"{G}:ForwardSleeps"]["findings"]
    assert code == 1 and [f["rule"] for f in finding] == ["TC801"] and "checking it" in finding[0]["message"]


def test_a_target_cannot_change_what_the_next_target_sees(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    saved = (list(sys.path), os.getcwd())
    code = main(["check", f"{G}:ChangesState", FINE, "--probe", "--format", "json", "--output", "report.json"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    assert torch.is_grad_enabled() and torch.get_default_dtype() == torch.float32
    assert not torch.are_deterministic_algorithms_enabled() and logging.root.manager.disable == logging.NOTSET
    assert (list(sys.path), os.getcwd()) == saved
    assert logging.getLogger("transformers").level != logging.DEBUG  # the check's own quieting stays
    assert warnings.filters[0][:3] != ("error", None, Warning)
    assert "TC_HOSTILE_LEAK" not in os.environ
    results = {r["target"]: r for r in json.loads((tmp_path / "report.json").read_text())["results"]}
    assert results[FINE]["compatible"] is True  # its probe ran with autograd on, float32, nondeterministic


def test_restoring_state_costs_milliseconds():
    from trainer_compat import guard

    start = time.perf_counter()
    for _ in range(20):
        guard.restore(guard.snapshot())
    assert (time.perf_counter() - start) / 20 < 0.05


def _shadows(folder: Path, marker: Path, names: tuple[str, ...]) -> None:
    for name in names:
        (folder / f"{name}.py").write_text(f"open({str(marker)!r} + '.{name}', 'w').close()\n", encoding="utf-8")


SHADOWS = ("typing", "inspect", "torch", "rich", "datasets", "yaml", "peft", "trl", "logging", "json")


def test_the_program_ignores_shadows_in_the_cwd_threads_and_forks(tmp_path):
    """One process: `python -m trainer_compat` from a folder of library-named files imports none of them; a
    non-daemon thread started at import does not keep it alive; a target that forks prints its error once."""
    _shadows(tmp_path, tmp_path / "hit", SHADOWS)
    env = {**os.environ, "PYTHONBREAKPOINT": ""}
    run = subprocess.run([sys.executable, "-m", "trainer_compat", "check", f"{H}/import_thread.py:Model",
                          "--format", "json"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode in (0, 1) and "Traceback" not in run.stderr, run.stderr
    assert json.loads(run.stdout)["results"][0]["target"].endswith("import_thread.py:Model")
    fork = subprocess.run([sys.executable, "-m", "trainer_compat", "check", f"{H}/import_fork.py:Model"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert fork.returncode == 2 and fork.stderr.count("forked and failed") == 1, fork.stderr
    assert not list(tmp_path.glob("hit.*"))


def test_static_canary_both_import_routes(tmp_path):
    """Route A: the console script with a pyproject root holding peft.py/trl.py/datasets.py beside the target,
    run from a subfolder. Route B: `python -m trainer_compat --static` from a folder of shadows."""
    marker = tmp_path / "hit"
    root = tmp_path / "proj"
    (root / "sub").mkdir(parents=True)
    _shadows(root, marker, ("peft", "trl", "datasets"))
    (root / "model.py").write_text("import peft\nimport torch.nn as nn\n\n\nclass Model(peft.PeftModel):\n"
                                   "    def forward(self, input_ids, labels=None):\n        return input_ids\n",
                                   encoding="utf-8")
    (root / "pyproject.toml").write_text('[tool.trainer-compat]\ntargets = ["model:Model"]\n', encoding="utf-8")
    script = Path(sys.executable).parent / "trainer-compat"
    a = subprocess.run([str(script), "check", "--static", "--format", "json"], cwd=root / "sub",
                       capture_output=True, text=True, timeout=120)
    assert a.returncode in (0, 1) and "Traceback" not in a.stderr, a.stderr
    shadows = tmp_path / "shadows"
    shadows.mkdir()
    _shadows(shadows, marker, SHADOWS)
    b = subprocess.run([sys.executable, "-m", "trainer_compat", "check", "--static", f"{root}/model.py:Model",
                        "--format", "json"], cwd=shadows, capture_output=True, text=True, timeout=120)
    assert b.returncode in (0, 1) and "Traceback" not in b.stderr, b.stderr
    assert not list(tmp_path.glob("hit.*"))


def test_isolation_owns_its_channel_and_children(capsys, tmp_path, monkeypatch):
    """From a folder of shadows (the child starts with the same guard): junk on fds 3-63 corrupts nothing, a
    daemon in its own session is killed with the child."""
    _shadows(tmp_path, tmp_path / "hit", SHADOWS)
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "daemon.pid"
    monkeypatch.setenv("TC_HOSTILE_MARKER", str(marker))
    targets = [f"{H}/import_writes_fds.py:Model", f"{H}/import_daemon.py:Model", FINE]
    code, results, _ = _json(capsys, *targets, "--isolate", "--timeout", "30")
    assert list(results) == targets and results[FINE]["compatible"] is True
    assert code in (0, 1) and not any(f["rule"].startswith("TC8") for r in results.values() for f in r["findings"])
    pid = int(marker.read_text())
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the target's daemon {pid} outlived the isolated check")
    assert not list(tmp_path.glob("hit.*"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_isolated_child_dies_with_its_parent(tmp_path):
    parent = subprocess.Popen([sys.executable, "-m", "trainer_compat", "check", f"{G}:InitSleeps", "--isolate",
                               "--timeout", "300"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    children: list[int] = []
    for _ in range(100):
        path = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
        children = [int(p) for p in path.read_text().split()] if path.exists() else []
        if children:
            break
        time.sleep(0.1)
    assert children, "no isolated child started"
    parent.send_signal(signal.SIGTERM)  # what a CI timeout sends: the parent dies without cleaning up
    parent.wait(30)
    for _ in range(100):
        if not any(Path(f"/proc/{c}").exists() for c in children):
            return
        time.sleep(0.1)
    pytest.fail(f"isolated child {children} outlived its parent")
