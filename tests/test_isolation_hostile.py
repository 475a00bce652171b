"""The hostile corpus (tests/hostile/): one clear line and exit 2 for bad input, a finding for a target that
takes its isolated check down, never a traceback, a hang or a file written by trainer-compat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer_compat.cli import main
from trainer_compat.isolate import isolate_by_default
from trainer_compat.report import Report

ROOT = Path(__file__).resolve().parent.parent
H = "tests/hostile"
RT = f"{H}/runtime.py"
FINE = f"{RT}:Fine"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def _files() -> set[str]:
    return {str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "hostile").rglob("*") if "__pycache__" not in p.parts}


BAD_INPUT = [
    ([f"{H}/syntax_error.py:Model"], "syntax error in"),
    ([f"{H}/indentation_error.py:Model"], "syntax error in"),
    ([f"{H}/null_bytes.py:Model"], "null bytes"),
    ([f"{H}/bad_encoding.py:Model"], "can't decode"),
    ([f"{H}/empty.py:Model"], "has no attribute 'Model'"),
    ([f"{H}/import_raises.py:Model"], "raised ValueError: configure me first"),
    ([f"{H}/import_sys_exit.py:Model"], "raised SystemExit: refusing to be imported"),
    ([f"{H}/import_sys_exit_zero.py:Model"], "raised SystemExit: 0"),
    ([f"{H}/import_recursion.py:Model"], "raised RecursionError"),
    ([f"{H}/import_missing_dep.py:Model"], "no module named 'a_dependency_nobody_installed_xyz'"),
    ([f"{H}/import_relative.py:Model"], "attempted relative import"),
    ([f"{H}/import_keyboard_interrupt.py:Model"], "raised KeyboardInterrupt"),
    ([f"{H}/module_getattr_raises.py:Model"], "raised RuntimeError: lazy attribute Model failed"),
    ([f"{RT}:RaisesValueError"], "raised ValueError: no GPU found"),
    ([f"{RT}:SysExitInInit"], "raised SystemExit: 3"),
    ([f"{RT}:RecursionInInit"], "raised RecursionError"),
    ([f"{RT}:InitReturnsValue"], "should return None"),
    ([f"{RT}:NotAModule"], "is not a torch.nn.Module subclass"),
    ([f"{RT}:factory_raises"], "factory raised OSError: weights not found"),
    ([f"{RT}:factory_returns_none"], "returned a NoneType"),
    ([f"{RT}:factory_sys_exit"], "factory raised SystemExit: bye"),
    ([f"{RT}:factory_needs_args"], "factory needs arguments path"),
    ([f"{RT}:an_int"], "a int is not a torch.nn.Module"),
    ([f"{RT}:a_lambda"], "returned a int"),
    ([f"{RT}:NoSuchThing"], "has no attribute 'NoSuchThing'"),
    ([f"{RT}:Fine.deeper.still"], "has no attribute"),
    ([f"{H}/no_such_file.py:Model"], "no such file"),
    ([":Model"], "expected module:Name"),
    ([f"{H}/runtime.py:"], "expected module:Name"),
    ([FINE, "--args", f"{H}/bad.yaml"], "bad.yaml"),
    ([FINE, "--args", f"{H}/list.yaml"], "list.yaml"),
    ([FINE, "--args", f"{H}/trailing_comma.json"], "trailing_comma.json"),
    ([FINE, "--args", f"{H}/string.json"], "string.json"),
    ([FINE, "--args", '{"optim": "not_an_optimizer"}'], "not_an_optimizer"),
    ([FINE, "--args", '{"eval_strategy": "steps", "save_strategy": "epoch", "load_best_model_at_end": true}'],
     "load_best_model_at_end"),
    ([FINE, "--init-kwargs", '{"tie": '], "--init-kwargs: invalid JSON"),
    ([FINE, "--select", "TC999X"], "TC999X"),
    ([FINE, "--ignore", "NOPE"], "NOPE"),
    ([f"{RT}:factory_raises", "--static"], "is a function"),
    ([f"{H}/syntax_error.py:Model", "--static"], "syntax error in"),
    ([FINE, "--static", "--probe"], "--static runs no code"),
    ([FINE, "--isolate", "--timeout", "0"], "--timeout"),
    ([FINE, "--isolate", "--memory-limit", "16"], "--memory-limit"),
    ([FINE, "--timeout", "soon"], "soon"),
]


@pytest.mark.parametrize(("argv", "expected"), BAD_INPUT, ids=[" ".join(a)[-45:] for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, expected):
    before = _files()
    try:
        code = main(["check", *argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trainer-compat: error: "), err
    assert expected in lines[0]
    assert _files() == before


HOSTILE_BUT_CHECKABLE = {
    "RecursiveGetattr": {"TC003"}, "PropertyRaises": {"TC003"}, "GetattributeRaises": {"TC003"},
    "StateDictRaises": {"TC301"}, "ClassTrick": set(), "DirRaises": set(), "SignatureRaises": set(),
    "HugeSignature": set(), "ForwardNotCallable": set(), "NeedsEverything": {"TC101"},
    "module_without_forward": {"TC101"},
}


def test_hostile_but_checkable_targets_get_a_verdict(capsys):
    targets = [f"{RT}:{name}" for name in HOSTILE_BUT_CHECKABLE]
    code = main(["check", *targets, "--args", '{"save_strategy": "steps"}', "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err, err
    results = {r["target"].rpartition(":")[2]: r for r in json.loads(out)["results"]}
    for name, codes in HOSTILE_BUT_CHECKABLE.items():
        assert codes <= {f["rule"] for f in results[name]["findings"]}, name


ISOLATED = {  # target -> the finding its isolated check gets
    f"{RT}:Hangs": "TC801",
    f"{RT}:Segfaults": "TC802", f"{H}/import_segfault.py:Model": "TC802",
    f"{RT}:OsExit": "TC803", f"{H}/import_os_exit.py:Model": "TC803", f"{RT}:SysExitInInit": "TC803",
    f"{RT}:EatsMemory": "TC804", f"{RT}:HugeRealTensor": "TC804",
}


def test_targets_that_take_the_process_down_are_findings_and_the_rest_are_checked(capsys, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    monkeypatch.setenv("TC_HOSTILE_MARKER", str(marker))
    targets = [FINE, *ISOLATED, f"{H}/import_writes_file.py:Model", f"{RT}:RecursiveGetattr"]
    before = _files()
    code = main(["check", *targets, "--isolate", "--timeout", "6", "--memory-limit", "2048", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err, err
    results = {r["target"]: r for r in json.loads(out)["results"]}
    assert list(results) == targets
    assert results[FINE]["compatible"] is True
    for target, rule in ISOLATED.items():
        assert [f["rule"] for f in results[target]["findings"]] == [rule], (target, results[target])
    assert "TC003" in {f["rule"] for f in results[f"{RT}:RecursiveGetattr"]["findings"]}
    assert marker.exists()  # the control for test_static: without --static, the target's code does run
    assert _files() == before


def test_ci_formats_isolate_by_default():
    assert all(isolate_by_default(f) for f in ("sarif", "github", "junit", "concise"))
    assert not any(isolate_by_default(f) for f in ("full", "json", "text"))


def test_reports_cross_the_process_boundary_unchanged():
    import trainer_compat

    report = trainer_compat.check(_seed(), args={"gradient_checkpointing": True})
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())), report.torch_version)
    assert again.to_dict() == report.to_dict() and again.findings == report.findings


def _seed():
    from trainer_compat.targets import load_target

    return load_target("examples/higgs_audio_wrapper.py:HiggsAudioModelWrapper")


def test_no_isolation_without_the_flag_in_plain_formats(capsys):
    # the check runs in this process: a recursive __getattr__ is still a finding, not a crash
    assert main(["check", f"{RT}:RecursiveGetattr", "--format", "json"]) == 1
    assert "TC003" in capsys.readouterr().out
