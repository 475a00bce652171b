"""The Python API: check() on instances, classes, factories, TrainingArguments objects and dicts."""

from __future__ import annotations

import pytest
import transformers
from torch import nn

import trainer_compat
from trainer_compat import Report, Severity, UsageError
from trainer_compat.testing import tiny_causal_lm


class Wrapper(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


def test_public_surface():
    assert set(trainer_compat.__all__) >= {"check", "Report", "Finding", "Severity", "Feature"}


def test_training_arguments_object_and_dict_agree(tmp_path):
    args = transformers.TrainingArguments(output_dir=str(tmp_path), gradient_checkpointing=True, report_to="none")
    from_object = trainer_compat.check(Wrapper(), args=args)
    from_dict = trainer_compat.check(Wrapper(), args={"gradient_checkpointing": True})
    assert isinstance(from_object, Report)
    assert [f.rule for f in from_object.findings] == [f.rule for f in from_dict.findings]
    assert not from_object.compatible
    assert "gradient_checkpointing" in from_object.features


def test_defaults_without_args_are_compatible():
    report = trainer_compat.check(Wrapper)
    assert report.compatible, str(report)
    assert all(f.severity is not Severity.ERROR for f in report.findings)
    assert str(report).startswith("Wrapper: compatible with transformers")


def test_bare_hf_model_is_compatible_with_checkpointing():
    report = trainer_compat.check(tiny_causal_lm(), args={"gradient_checkpointing": True, "save_strategy": "steps"})
    assert report.compatible, str(report)


def test_member_table_shows_provenance():
    report = trainer_compat.check(Wrapper())
    rows = {m.name: m for m in report.members}
    assert rows["forward"].provenance == "defined"
    assert rows["gradient_checkpointing_enable"].provenance == "missing"


def test_invalid_arguments_raise_usage_error():
    with pytest.raises(UsageError, match="no_such_field"):
        trainer_compat.check(Wrapper(), args={"no_such_field": 1})
    with pytest.raises(UsageError, match="unknown trainer 'no-such-trainer'"):
        trainer_compat.check(Wrapper(), trainer="no-such-trainer")
    with pytest.raises(UsageError, match=r"not a transformers\.Trainer subclass"):
        trainer_compat.check(Wrapper(), trainer=Wrapper)


def test_yaml_args_file(tmp_path):
    from trainer_compat.features import build_setup, load_args_spec

    path = tmp_path / "args.yaml"
    path.write_text("gradient_checkpointing: true\ngradient_accumulation_steps: 4\n")
    setup = build_setup(load_args_spec(str(path)))
    assert setup.gradient_accumulation_steps == 4
    assert {f.value for f in setup.features} >= {"gradient_checkpointing", "gradient_accumulation"}


class SuppressedWrapper(nn.Module):  # trainer-compat: ignore[TC201] no integration reads config in this project
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


def test_check_applies_class_line_suppressions_once():
    args = {"label_smoothing_factor": 0.1}  # reads model.config on the releases that have TC201 fire here
    plain = {f.rule for f in trainer_compat.check(Wrapper(), args=args).findings}
    suppressed = {f.rule for f in trainer_compat.check(SuppressedWrapper(), args=args).findings}
    if "TC201" in plain:
        assert suppressed == plain - {"TC201"}
    else:  # nothing to suppress on this release: the comment is reported as unused
        assert suppressed == plain | {"TC901"}


def test_the_pytest_fixture_does_not_suppress_twice():
    from trainer_compat.pytest_plugin import Checker

    codes = {f.rule for f in Checker().check(SuppressedWrapper(), args={"label_smoothing_factor": 0.1}).findings}
    assert codes == {f.rule for f in trainer_compat.check(SuppressedWrapper(),
                                                          args={"label_smoothing_factor": 0.1}).findings}


def test_the_arguments_dict_is_left_as_it_was_given():
    """transformers 4.x fills a given fsdp_config dict in place; the check must not hand that on to the caller."""
    args = {"fsdp": "full_shard auto_wrap", "fsdp_config": {"transformer_layer_cls_to_wrap": ["GPT2Block"]}}
    trainer_compat.check(Wrapper(), args=args)
    assert args == {"fsdp": "full_shard auto_wrap", "fsdp_config": {"transformer_layer_cls_to_wrap": ["GPT2Block"]}}


def test_public_names_stay_what_they_are_whatever_is_imported_first() -> None:
    """The package root exports lazily (PEP 562): no public function may share its name with a submodule, or
    importing that submodule first (as the checker does) would rebind the package attribute to the module."""
    import subprocess
    import sys

    code = ("import importlib, pkgutil, types, trainer_compat\n"
            "for info in pkgutil.walk_packages(trainer_compat.__path__, 'trainer_compat.'):\n"
            "    if info.name not in ('trainer_compat.__main__', 'trainer_compat.pytest_plugin'):\n"
            "        importlib.import_module(info.name)\n"
            "print([n for n in trainer_compat.__all__ if isinstance(getattr(trainer_compat, n), types.ModuleType)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
