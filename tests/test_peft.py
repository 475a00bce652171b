"""The PEFT rules against real PEFT: each `fires` example really fails in get_peft_model or the first step,
each `silent` one really gets its adapter and trains a step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import trainer_compat
from trainer_compat.cli import main
from trainer_compat.rules.peft import (
    PeftForwardKwargs,
    PeftNestedInWrapper,
    PeftTargetModulesUnknown,
    PeftTaskNeedsGeneration,
    PeftTaskReadsConfig,
)

peft = pytest.importorskip("peft", reason="the PEFT rules are tested against real peft")

EXPECTED = {PeftTaskNeedsGeneration: AttributeError, PeftForwardKwargs: TypeError, PeftTargetModulesUnknown: ValueError,
            PeftTaskReadsConfig: AttributeError}


def _adapt_and_step(model: torch.nn.Module, config: dict) -> None:
    """get_peft_model, then one forward/backward as Trainer's training step does it."""
    adapter = peft.get_peft_config(config) if "peft_type" in config else peft.LoraConfig(**config)
    peft_model = peft.get_peft_model(model, adapter)
    ids = torch.randint(1, 100, (2, 8))
    out = peft_model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids)
    out.loss.backward()


def _cases(kind: str) -> list:
    return [pytest.param(rule, example, id=f"{rule.code}-{kind}-{i}")
            for rule in EXPECTED for i, example in enumerate(getattr(rule, kind))]


@pytest.mark.parametrize(("rule", "example"), _cases("fires"))
def test_real_peft_fails_where_the_rule_fires(rule, example, tmp_path) -> None:
    model = example.load(tmp_path)
    assert rule.code in {f.rule for f in trainer_compat.check(model, peft=example.peft).findings}
    with pytest.raises(EXPECTED[rule]):
        _adapt_and_step(model(), example.peft)


@pytest.mark.parametrize(("rule", "example"), _cases("silent"))
def test_real_peft_works_where_the_rule_is_silent(rule, example, tmp_path) -> None:
    model = example.load(tmp_path)
    assert rule.code not in {f.rule for f in trainer_compat.check(model, peft=example.peft).findings}
    _adapt_and_step(model(), example.peft)


def test_a_lora_config_object_is_accepted(tmp_path) -> None:
    example = PeftTaskNeedsGeneration.fires[0]
    report = trainer_compat.check(example.load(tmp_path), peft=peft.LoraConfig(**example.peft))
    assert "TC1001" in {f.rule for f in report.findings}


def test_cli_peft_flag(capsys) -> None:
    code = main(["check", "tests/zoo.py:ExplicitWrapper", "--no-isolate", "--peft", '{"task_type": "CAUSAL_LM"}',
                 "--format", "concise"])
    out = capsys.readouterr().out
    assert code == 1 and "TC1001" in out and "TC1002" in out and "TC1003" in out


def _train_and_save(model: torch.nn.Module, workdir) -> Path:
    """One real Trainer step with a checkpoint at step 1; the checkpoint directory."""
    from transformers import Trainer, TrainingArguments

    rows = [{"input_ids": torch.randint(1, 50, (8,)), "labels": torch.randint(1, 50, (8,))} for _ in range(2)]
    args = TrainingArguments(str(workdir), max_steps=1, save_steps=1, report_to="none", use_cpu=True,
                             per_device_train_batch_size=2, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=rows).train()
    return Path(workdir) / "checkpoint-1"


def _base_for_reload(example_code: str, tmp_path: Path) -> torch.nn.Module:
    namespace: dict = {}
    exec(compile(example_code, str(tmp_path / "reload.py"), "exec"), namespace)
    return namespace["Wrapper"](nested=False)


def test_a_nested_peft_model_really_saves_no_adapter_where_tc1004_fires(tmp_path) -> None:
    example = PeftNestedInWrapper.fires[0]
    model = example.load(tmp_path)
    assert "TC1004" in {f.rule for f in trainer_compat.check(model).findings}
    checkpoint = _train_and_save(model(), tmp_path / "out")
    assert (checkpoint / "model.safetensors").is_file() and not (checkpoint / "adapter_config.json").exists()
    with pytest.raises(ValueError, match=r"adapter_config\.json"):
        peft.PeftModel.from_pretrained(_base_for_reload(example.code, tmp_path).model, str(checkpoint))


def test_a_top_level_peft_model_really_saves_its_adapter_where_tc1004_is_silent(tmp_path) -> None:
    example = PeftNestedInWrapper.silent[0]
    model = example.load(tmp_path)
    assert "TC1004" not in {f.rule for f in trainer_compat.check(model).findings}
    checkpoint = _train_and_save(model(), tmp_path / "out")
    assert (checkpoint / "adapter_config.json").is_file() and not (checkpoint / "model.safetensors").exists()
    reloaded = peft.PeftModel.from_pretrained(_base_for_reload(example.code, tmp_path), str(checkpoint))
    assert any("lora_A" in name for name, _ in reloaded.named_parameters())


def _adapted_checkpointed_step(model: torch.nn.Module, config: dict, workdir) -> None:
    """get_peft_model, then one real Trainer step with gradient checkpointing (Trainer's default kwargs)."""
    from transformers import Trainer, TrainingArguments

    rows = [{"input_ids": torch.randint(1, 50, (8,)), "labels": torch.randint(1, 50, (8,))} for _ in range(2)]
    args = TrainingArguments(str(workdir), max_steps=1, save_strategy="no", report_to="none", use_cpu=True,
                             per_device_train_batch_size=2, gradient_checkpointing=True, disable_tqdm=True)
    Trainer(model=peft.get_peft_model(model, peft.LoraConfig(**config)), args=args, train_dataset=rows).train()


@pytest.mark.parametrize("kind", ["fires", "silent"])
def test_tc403_with_an_adapter_to_come_agrees_with_real_peft_and_trainer(kind, tmp_path) -> None:
    from trainer_compat.rules.frozen_inputs import CheckpointingFrozenInputs
    from trainer_compat.versions import installed_transformers

    example = next(e for e in getattr(CheckpointingFrozenInputs, kind) if e.peft is not None)
    model = example.load(tmp_path)
    fires = "TC403" in {f.rule for f in trainer_compat.check(model, args=example.args, peft=example.peft).findings}
    assert fires == (kind == "fires" and installed_transformers() in example.versions)
    if fires:
        with pytest.raises(RuntimeError, match="does not require grad"):
            _adapted_checkpointed_step(model(), example.peft, tmp_path)
    else:
        _adapted_checkpointed_step(model(), example.peft, tmp_path)


_SEQ2SEQ_WRAPPER = """
import torch.nn as nn
from trainer_compat.testing import tiny_seq2seq

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_seq2seq()

    @property
    def config(self):
        return self.model.config

    def prepare_inputs_for_generation(self, *args, **kwargs):
        return self.model.prepare_inputs_for_generation(*args, **kwargs)

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs)
"""


def test_a_seq2seq_adapter_needs_what_the_installed_peft_reads(tmp_path) -> None:
    """PeftModelForSeq2SeqLM.__init__ also read `_prepare_encoder_decoder_kwargs_for_generation` up to peft 0.1x:
    TC1001 names it exactly where the installed peft does, and get_peft_model fails exactly there."""
    from trainer_compat.rules.base import Example
    from trainer_compat.rules.peft import _generation_members

    config = {"r": 2, "target_modules": ["q", "v"], "task_type": "SEQ_2_SEQ_LM"}
    model = Example(_SEQ2SEQ_WRAPPER, peft=config).load(tmp_path)
    reads = "_prepare_encoder_decoder_kwargs_for_generation" in dict(_generation_members("SEQ_2_SEQ_LM"))
    report = trainer_compat.check(model, peft=config)
    assert ("_prepare_encoder_decoder_kwargs_for_generation" in {f.member for f in report.findings
                                                                  if f.rule == "TC1001"}) == reads
    if reads:
        with pytest.raises(AttributeError, match="_prepare_encoder_decoder_kwargs_for_generation"):
            peft.get_peft_model(model(), peft.LoraConfig(**config))
    else:
        ids = torch.randint(2, 100, (2, 6))
        adapted = peft.get_peft_model(model(), peft.LoraConfig(**config))
        adapted(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss.backward()


@pytest.mark.parametrize("kind", ["fires", "silent"])
def test_tc1006_trained_weights_outside_the_adapter_do_not_survive_save_and_reload(kind, tmp_path) -> None:
    """TC1006 against the real Trainer, save_model and PeftModel.from_pretrained: a head unfrozen by hand trains
    but reloads untrained (the rule errs under the default save_strategy); listed in modules_to_save it reloads
    trained (the rule is silent)."""
    import transformers

    from trainer_compat.findings import Severity
    from trainer_compat.rules.peft_saving import PeftTrainableOutsideAdapter
    from trainer_compat.testing import tiny_causal_lm

    example = getattr(PeftTrainableOutsideAdapter, kind)[0]
    factory = example.load(tmp_path)
    transformers.set_seed(0)
    model = factory()
    report = trainer_compat.check(model)
    expected = {Severity.ERROR} if kind == "fires" else set()
    assert {f.severity for f in report.findings if f.rule == "TC1006"} == expected
    head = model.base_model.model.lm_head
    trained_head = head.modules_to_save["default"] if kind == "silent" else head
    before = trained_head.weight.detach().clone()
    rows = [{"input_ids": torch.randint(2, 100, (8,)), "labels": torch.randint(2, 100, (8,))} for _ in range(4)]
    args = transformers.TrainingArguments(str(tmp_path / "run"), max_steps=2, save_steps=1, report_to="none",
                                          use_cpu=True, per_device_train_batch_size=2, disable_tqdm=True,
                                          learning_rate=1e-2)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))
    trained = trained_head.weight.detach().clone()
    assert not torch.equal(before, trained)  # it trained
    reloaded = peft.PeftModel.from_pretrained(tiny_causal_lm(tie=False), str(tmp_path / "final"))
    got = reloaded.base_model.model.lm_head
    got = got.modules_to_save["default"] if kind == "silent" else got
    assert torch.equal(got.weight.detach(), trained) == (kind == "silent")
