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
    _, results = _results(capsys, f"{source}:Model", f"{source}:Known", "--static")
    model, known = results[f"{source}:Model"], results[f"{source}:Known"]
    assert "error" not in [f["severity"] for f in model["findings"] if f["rule"] == "TC001"]  # unknown, not missing
    assert [f["severity"] for f in known["findings"] if f["rule"] == "TC001"] == ["error"]
    assert any("base Base was not imported" in note for note in model["skipped"])
    assert any("helper = Base.make() was not evaluated" in note for note in model["skipped"])


_BASE = ("import os\nimport torch.nn as nn\nopen(os.environ['TC_HOSTILE_MARKER'], 'w').close()  # never runs\n\n"
         "class Base(nn.Module):\n    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None,"
         " **kwargs):\n        self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_"
         "checkpointing_kwargs)\n\n    def forward(self, input_ids, attention_mask=None, labels=None):\n"
         "        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)\n")


@pytest.mark.parametrize("import_line", ["from pkg.base import Base", "from .base import Base"])
def test_a_base_in_another_file_of_the_project_is_read_not_imported(capsys, tmp_path, monkeypatch, import_line):
    marker = tmp_path / "imported"
    monkeypatch.setenv("TC_HOSTILE_MARKER", str(marker))
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text(_BASE.split("\n\n", maxsplit=1)[0] + "\n", encoding="utf-8")
    (package / "base.py").write_text(_BASE, encoding="utf-8")
    (package / "model.py").write_text(f"{import_line}\n\n\nclass Model(Base):\n    main_input_name = 'input_ids'\n",
                                      encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    target = f"{package / 'model.py'}:Model"
    _, results = _results(capsys, target, "--static")
    rules = {f["rule"]: f for f in results[target]["findings"]}
    assert "TC001" not in rules  # gradient_checkpointing_enable comes from Base, in pkg/base.py
    assert "TC201" in rules  # config: known to be missing (an unknown base would make it unknown: no finding)
    assert not any("was not imported" in note for note in results[target]["skipped"])
    assert not marker.exists()


def test_a_base_whose_own_base_is_unknown_stays_unknown(capsys, tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "base.py").write_text("from my_company.models import Deep\n\nclass Base(Deep):\n    pass\n",
                                     encoding="utf-8")
    (package / "model.py").write_text("from .base import Base\n\nclass Model(Base):\n    pass\n", encoding="utf-8")
    target = f"{package / 'model.py'}:Model"
    _, results = _results(capsys, target, "--static")
    assert "error" not in [f["severity"] for f in results[target]["findings"] if f["rule"] == "TC001"]
    assert any("base Deep was not imported" in note for note in results[target]["skipped"])
