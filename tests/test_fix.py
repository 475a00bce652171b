"""`trainer-compat fix`: the shims written into the source with LibCST, checked, written atomically, idempotent."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import libcst as cst
import pytest

from tests.trainer_runner import Profile, run
from trainer_compat.shims.fix import add_fix_parser
from trainer_compat.targets import load_target

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "higgs_audio_wrapper.py"
ODD = ROOT / "tests" / "fixtures" / "fix" / "odd_wrappers.py"
SEED = {"gradient_checkpointing": True, "eval_strategy": "steps", "save_strategy": "steps",
        "load_best_model_at_end": True}


def fix(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_fix_parser(parser.add_subparsers(dest="command"))
    options = parser.parse_args(["fix", *argv])
    return options.handler(options)


@pytest.fixture
def seed_copy(tmp_path: Path) -> Path:
    target = tmp_path / "seed_wrapper_copy.py"
    shutil.copy(EXAMPLE, target)
    return target


def test_fix_write_on_the_seed_trains_through_the_real_trainer(seed_copy, tmp_path, capsys):
    names = ("HiggsAudioModelWrapper", "HiggsAudioModelWrapperWithShim")
    assert fix(*(f"{seed_copy}:{n}" for n in names), "--diff") == 1
    assert fix(*(f"{seed_copy}:{n}" for n in names), "--write", "--args", '{"gradient_checkpointing": true}') == 0
    out = capsys.readouterr().out
    assert "now compatible" in out and "replaced gradient_checkpointing_enable" in out
    text = seed_copy.read_text()
    cst.parse_module(text)
    assert "except Exception as exc" not in text.split("class HiggsAudioModelWrapperWithShim")[1]
    assert [p.name for p in seed_copy.parent.iterdir() if p.name.startswith(".")] == []  # no temp file left
    assert fix(*(f"{seed_copy}:{n}" for n in names), "--write") == 0 and seed_copy.read_text() == text
    assert fix(*(f"{seed_copy}:{n}" for n in names), "--diff") == 0
    for name in names:
        cls = load_target(f"{seed_copy}:{name}")
        outcome = run(cls, "trainer", Profile("fixed", SEED), tmp_path / name)
        assert outcome.ok, f"{name}: {outcome}"


def test_fix_keeps_unusual_formatting_decorators_nested_classes_and_comments(tmp_path):
    target = tmp_path / "odd_wrappers.py"
    shutil.copy(ODD, target)
    original = target.read_text()
    assert fix(f"{target}:Outer.Wrapper", f"{target}:Flat", "--write") == 0
    text = target.read_text()
    cst.parse_module(text)
    for line in original.splitlines():
        if "gradient_checkpointing" in line or line.strip() in ("try:", "except Exception:", "pass"):
            continue  # the replaced swallowing shim of Flat
        assert line in text.splitlines(), line
    assert text.index("class Untouched") > text.index("def tie_weights")
    assert "      def gradient_checkpointing_enable" in text  # the nested class's two-space indent is kept
    assert "self.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)" \
        not in text
    module = load_target(f"{target}:Outer")
    assert module.traced and hasattr(module.Wrapper, "gradient_checkpointing_enable")
    assert fix(f"{target}:Outer.Wrapper", f"{target}:Flat", "--diff") == 0


def test_write_refuses_when_the_result_does_not_import(seed_copy, monkeypatch, capsys):
    import trainer_compat.shims.fix as fix_module

    original = seed_copy.read_text()
    monkeypatch.setattr(fix_module, "_VERIFY", "raise SystemExit('import failed on purpose')")
    assert fix(f"{seed_copy}:HiggsAudioModelWrapper", "--write") == 2
    assert seed_copy.read_text() == original
    assert "does not import and check cleanly" in capsys.readouterr().err


def test_write_refuses_when_the_file_changed_since_read(seed_copy, monkeypatch, capsys):
    import trainer_compat.shims.fix as fix_module

    real = fix_module.verify

    def edit_meanwhile(*args, **kwargs):
        findings = real(*args, **kwargs)
        seed_copy.write_text(seed_copy.read_text() + "\n# edited by someone else\n")
        return findings

    monkeypatch.setattr(fix_module, "verify", edit_meanwhile)
    assert fix(f"{seed_copy}:HiggsAudioModelWrapper", "--write") == 2
    assert seed_copy.read_text().endswith("# edited by someone else\n")
    assert "changed since it was read" in capsys.readouterr().err

