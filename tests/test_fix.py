"""`trainer-compat fix`: the shims written into the source with LibCST, checked, written atomically, idempotent."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import libcst as cst
import pytest

from tests.trainer_runner import Profile, run
from trainer_compat.cli.fix import add_fix_parser
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
    assert fix(f"{target}:Outer.Wrapper", f"{target}:Flat", "--write", "--all") == 0  # every shim: tie_weights too
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
    from trainer_compat.shims import commit

    original = seed_copy.read_text()
    monkeypatch.setattr(commit, "_VERIFY", "raise SystemExit('import failed on purpose')")
    assert fix(f"{seed_copy}:HiggsAudioModelWrapper", "--write") == 2
    assert seed_copy.read_text() == original
    assert "does not import and check cleanly" in capsys.readouterr().err


def test_write_refuses_when_the_file_changed_since_read(seed_copy, monkeypatch, capsys):
    from trainer_compat.shims import commit

    def edit_meanwhile(*args, **kwargs):  # the real check is not what this is about: someone edits meanwhile
        seed_copy.write_text(seed_copy.read_text() + "\n# edited by someone else\n")
        return {}

    monkeypatch.setattr(commit, "verify", edit_meanwhile)
    assert fix(f"{seed_copy}:HiggsAudioModelWrapper", "--write") == 2
    assert seed_copy.read_text().endswith("# edited by someone else\n")
    assert "changed since it was read" in capsys.readouterr().err



# -- the diff is applyable and minimal; imports where ruff puts them; the fix draws no finding of its own ------------

ARGS = ROOT / "examples" / "train_args.json"
NOT_NEEDED = ("def generate", "generation_config", "_no_split_modules", "get_input_embeddings", "def tie_weights",
              "add_model_tags", "main_input_name", "prepare_inputs_for_generation", "_keys_to_ignore_on_save")


@pytest.fixture
def seed_repo(tmp_path: Path) -> Path:
    """A git work tree holding a copy of the seed example at examples/higgs_audio_wrapper.py."""
    import subprocess

    repo = tmp_path / "repo"
    (repo / "examples").mkdir(parents=True)
    shutil.copy(EXAMPLE, repo / "examples" / EXAMPLE.name)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


def test_fix_diff_applies_with_git_apply_and_is_minimal(seed_repo, tmp_path, capsys, monkeypatch):
    import subprocess

    monkeypatch.chdir(tmp_path)  # not the work tree: the paths still come relative to its root
    target = seed_repo / "examples" / EXAMPLE.name
    original = target.read_text()
    assert fix(f"{target}:HiggsAudioModelWrapper", "--diff", "--args", str(ARGS)) == 1
    diff = capsys.readouterr().out
    assert diff.startswith("--- a/examples/higgs_audio_wrapper.py\n+++ b/examples/higgs_audio_wrapper.py\n"), diff[:200]
    patch_file = tmp_path / "fix.diff"
    patch_file.write_text(diff)
    for argv in (["--check"], []):
        done = subprocess.run(["git", "apply", *argv, str(patch_file)], cwd=seed_repo, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    fixed = target.read_text()
    assert fixed != original and "def gradient_checkpointing_enable" in fixed and "def state_dict" in fixed
    added = "".join(line for line in diff.splitlines(True) if line.startswith("+"))
    assert not [name for name in NOT_NEEDED if name in added]  # what these arguments never read is left out
    lines = fixed.splitlines()
    assert lines.index("import inspect") + 1 == lines.index("import logging")  # the stdlib section, sorted
    assert lines.index("import inspect") < lines.index("import torch")
    ruff = shutil.which("ruff")
    if ruff:
        done = subprocess.run([ruff, "check", "--isolated", "--select", "I", str(target)], capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stdout
    # --all writes every shim the wrapper can take
    target.write_text(original)
    assert fix(f"{target}:HiggsAudioModelWrapper", "--diff", "--all", "--args", str(ARGS)) == 1
    everything = capsys.readouterr().out
    added = "".join(line for line in everything.splitlines(True) if line.startswith("+"))
    assert all(name in added for name in NOT_NEEDED), [name for name in NOT_NEEDED if name not in added]


@pytest.mark.parametrize("source", [
    '"""Doc."""\n\nfrom __future__ import annotations\n\nimport torch\n\n\nclass W:\n    pass\n',
    'import abc\nimport os\nfrom typing import Any\n\nimport torch\n\n\nclass W:\n    pass\n',
    'from typing import Any\n\nimport torch\n\n\nclass W:\n    pass\n',
    'class W:\n    pass\n',
    'import zlib\n\nimport torch\n\n\nclass W:\n    pass\n',
])
def test_the_added_import_sits_where_isort_puts_it(source):
    from trainer_compat.shims.edit import add_block

    text = add_block(source, "W", "    x = inspect\n", set(), ("inspect",))
    lines = text.splitlines()
    at = lines.index("import inspect")
    stdlib = [i for i, line in enumerate(lines) if line.split(" ")[0] in ("import", "from")
              and line.split(" ")[1].split(".")[0] in ("abc", "os", "typing", "inspect", "zlib")]
    third = [i for i, line in enumerate(lines) if line.startswith("import torch")]
    future = [i for i, line in enumerate(lines) if line.startswith("from __future__")]
    straight = [lines[i].split(" ")[1] for i in stdlib if lines[i].startswith("import ")]
    assert straight == sorted(straight)  # straight imports sorted, before the `from` ones
    assert all(at < i for i in stdlib if lines[i].startswith("from "))
    assert all(at < i for i in third) and all(at > i for i in future)
    if third:
        assert lines[third[0] - 1] == "" and lines[at + 1] != "import torch"  # sections apart
    ruff = shutil.which("ruff")
    if ruff:
        import subprocess

        done = subprocess.run([ruff, "check", "--isolated", "--select", "I", "--stdin-filename", "x.py", "-"],
                              input=text, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout


def test_after_fix_write_the_check_draws_no_finding_of_the_fix_own(seed_repo, capsys):
    import trainer_compat
    from trainer_compat.features import load_args_spec

    target = seed_repo / "examples" / EXAMPLE.name
    args = load_args_spec(str(ARGS))
    before = trainer_compat.check(load_target(f"{target}:HiggsAudioModelWrapper"), args=args)
    assert fix(f"{target}:HiggsAudioModelWrapper", "--write", "--args", str(ARGS)) == 0
    assert "now compatible" in capsys.readouterr().out
    after = trainer_compat.check(load_target(f"{target}:HiggsAudioModelWrapper"), args=args)
    new = {(f.rule, f.member) for f in after.findings} - {(f.rule, f.member) for f in before.findings}
    assert not new, [f.message for f in after.findings]
    assert not [f for f in after.findings if f.rule == "TC101"], [f.message for f in after.findings]


def test_fix_texts_name_the_real_inner_attribute():
    from torch import nn

    import trainer_compat
    from trainer_compat.testing import tiny_causal_lm

    class LmWrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)
            self.language_model = tiny_causal_lm(tie=False)

        def forward(self, input_ids=None, attention_mask=None, labels=None):
            return self.language_model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)

    report = trainer_compat.check(LmWrapper(), args={"gradient_checkpointing": True})
    fixes = {f.rule: f.fix for f in report.findings if f.fix and "self." in f.fix}
    assert {"TC001", "TC201"} <= set(fixes), fixes
    for rule, text in fixes.items():
        assert "self.language_model." in text and "self.model." not in text, (rule, text)
