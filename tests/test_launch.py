"""How the run is launched (issue #14): world size, nodes and launcher from the API, the command line,
[tool.trainer-compat] and the isolated child; a hazard that fails every multi-process run (TC1204, TC1205) is an
error when the launch says world_size > 1, a warning when it says one process or says nothing."""

from __future__ import annotations

import json

import pytest

import trainer_compat
from trainer_compat.cli import main
from trainer_compat.errors import UsageError
from trainer_compat.features import Launch
from trainer_compat.rules.distributed_ddp import DdpReentrantCheckpointing

EXAMPLE = DdpReentrantCheckpointing.fires[0]


def _severity(report) -> str | None:
    found = [f.severity.value for f in report.findings if f.rule == "TC1205"]
    return found[0] if found else None


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    directory = tmp_path_factory.mktemp("launch")
    path = directory / "reentrant.py"
    path.write_text(EXAMPLE.code, encoding="utf-8")
    (directory / "args.json").write_text(json.dumps(EXAMPLE.args), encoding="utf-8")
    return path


@pytest.mark.parametrize(("launch", "severity"), [(None, "warning"), ({"world_size": 1}, "warning"),
                                                  ({"world_size": 2}, "error"),
                                                  (Launch(world_size=16, nnodes=2, launcher="torchrun"), "error")])
def test_severity_follows_the_launch(launch, severity, tmp_path) -> None:
    report = trainer_compat.check(EXAMPLE.load(tmp_path), args=EXAMPLE.args, launch=launch)
    assert _severity(report) == severity
    if severity == "error":
        message = next(f.message for f in report.findings if f.rule == "TC1205")
        assert f"launched on {Launch.of(launch).world_size} processes" in message


@pytest.mark.parametrize(("launch", "match"), [({"world_size": 0}, "positive integer"),
                                               ({"world_size": 2, "launcher": "mpirun"}, "launcher must be one of"),
                                               ({"world_size": 2, "nnodes": 4}, "4 nodes need a world size"),
                                               ({"gpus": 2}, "unknown key 'gpus'")])
def test_bad_launches_are_usage_errors(launch, match) -> None:
    with pytest.raises(UsageError, match=match):
        Launch.of(launch)


def test_nnodes_alone_means_one_process_per_node() -> None:
    assert Launch.of({"nnodes": 2}) == Launch(world_size=2, nnodes=2)


@pytest.mark.parametrize("isolate", ["--no-isolate", "--isolate"])
def test_cli_world_size(model_file, capsys, isolate) -> None:
    argv = ["check", f"{model_file}:Model", "--args", str(model_file.parent / "args.json"), "--format", "json",
            isolate, "--select", "TC1205"]
    assert main(argv) == 0  # a warning: the launch is not said
    assert "warning" in capsys.readouterr().out
    assert main([*argv, "--world-size", "2", "--launcher", "torchrun"]) == 1
    out = capsys.readouterr().out
    assert '"error"' in out and "launched on 2 processes with torchrun" in out


def test_cli_rejects_a_bad_launch(model_file, capsys) -> None:
    code = main(["check", f"{model_file}:Model", "--world-size", "1", "--nnodes", "2", "--no-isolate"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "2 nodes need a world size of at least 2" in err, err


def test_config_launch_keys(model_file, capsys, monkeypatch) -> None:
    root = model_file.parent
    (root / "pyproject.toml").write_text(
        '[tool.trainer-compat]\ntargets = ["reentrant.py:Model"]\nargs = "args.json"\nselect = ["TC1205"]\n'
        'format = "concise"\nworld-size = 4\nnnodes = 2\nlauncher = "accelerate"\n', encoding="utf-8")
    monkeypatch.chdir(root)
    assert main(["check", "--no-isolate"]) == 1
    assert "launched on 4 processes on 2 nodes with accelerate" in capsys.readouterr().out
    assert main(["check", "--no-isolate", "--world-size", "2", "--nnodes", "1"]) == 1  # the command line wins
    assert "launched on 2 processes with accelerate" in capsys.readouterr().out
    (root / "pyproject.toml").write_text('[tool.trainer-compat]\ntargets = ["reentrant.py:Model"]\n'
                                         'launcher = "slurm"\n', encoding="utf-8")
    assert main(["check", "--no-isolate"]) == 2
    assert "launcher must be one of" in capsys.readouterr().err
