"""--static: a class checked from its source alone; none of the target's code runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer_compat.cli import main

ROOT = Path(__file__).resolve().parent.parent
SEED = "examples/higgs_audio_wrapper.py"
CHECKPOINTING = '{"gradient_checkpointing": true, "save_strategy": "steps"}'


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def _results(capsys, *argv: str) -> tuple[int, dict]:
    code = main(["check", *argv, "--args", CHECKPOINTING, "--format", "json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, {r["target"]: r for r in json.loads(out)["results"]}


def test_static_executes_no_user_code(capsys, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    monkeypatch.setenv("TC_HOSTILE_MARKER", str(marker))
    target = "tests/hostile/import_writes_file.py:Model"
    code, results = _results(capsys, target, "--static")
    assert code == 1
    assert "TC001" in {f["rule"] for f in results[target]["findings"]}
    assert not marker.exists() and not Path(f"{marker}.init").exists()
    assert any(note.startswith("instance checks") and "--static" in note for note in results[target]["skipped"])


def test_static_finds_the_class_level_problems_of_the_seed_example(capsys):
    targets = [f"{SEED}:HiggsAudioModelWrapper", f"{SEED}:HiggsAudioModelWrapperWithShim"]
    code, static = _results(capsys, *targets, "--static")
    _, built = _results(capsys, *targets)
    assert code == 1
    plain, shim = ({f["rule"] for f in static[t]["findings"]} for t in targets)
    assert {"TC001", "TC101", "TC201"} <= plain and {"TC101", "TC402"} <= shim
    for target in targets:  # what needs an instance is said, not guessed
        assert plain | shim >= {f["rule"] for f in static[target]["findings"]}
        assert {f["rule"] for f in static[target]["findings"]} <= {f["rule"] for f in built[target]["findings"]}
        assert any("TC301" in note for note in static[target]["skipped"])


def test_a_base_from_outside_torch_and_transformers_makes_members_unknown(capsys, tmp_path):
    source = tmp_path / "model.py"
    source.write_text("import torch.nn as nn\nfrom my_company.models import Base\n\n"
                      "class Known(nn.Module):\n    def forward(self, input_ids, labels=None):\n        return None\n\n"
                      "class Model(Base):\n    main_input_name = 'input_ids'\n    helper = Base.make()\n\n"
                      "    def forward(self, input_ids, labels=None):\n        return None\n")
    code, results = _results(capsys, f"{source}:Model", f"{source}:Known", "--static")
    model, known = results[f"{source}:Model"], results[f"{source}:Known"]
    assert "error" not in [f["severity"] for f in model["findings"] if f["rule"] == "TC001"]  # unknown, not missing
    assert [f["severity"] for f in known["findings"] if f["rule"] == "TC001"] == ["error"]
    assert any("base Base was not imported" in note for note in model["skipped"])
    assert any("helper = Base.make() was not evaluated" in note for note in model["skipped"])
