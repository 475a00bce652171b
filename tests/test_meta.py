"""Targets are built on the meta device unless the probe needs real weights; every static rule still works there."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import trainer_compat
from trainer_compat.checker import build_subject
from trainer_compat.errors import TargetError
from trainer_compat.rules.saving import shared_tensor_groups
from trainer_compat.targets import load_target
from trainer_compat.testing import tiny_causal_lm

ROOT = Path(__file__).resolve().parent.parent
SAVE = {"save_strategy": "steps", "save_steps": 1}


class Wrapper(nn.Module):
    def __init__(self, tie=True):
        super().__init__()
        self.model = tiny_causal_lm(tie=tie)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class NeedsData(Wrapper):
    """An __init__ that reads a tensor's value cannot run on meta: it is built on the real device."""

    def __init__(self):
        super().__init__(tie=True)
        self.scale = float(torch.ones(1).sum().item())


def _device(subject) -> str:
    return next(subject.instance.parameters()).device.type


def test_classes_and_factories_are_built_on_meta_and_rebuilt_for_real():
    for target in (Wrapper, lambda: Wrapper(tie=False)):
        subject = build_subject(target)
        assert _device(subject) == "meta"
        assert subject.rebuild is not None and _device(subject.rebuild()) == "cpu"


def test_tied_weights_are_seen_on_meta_and_distinct_ones_are_not():
    with torch.device("meta"):
        tied, untied = tiny_causal_lm(tie=True), tiny_causal_lm(tie=False)
    assert shared_tensor_groups(tied.state_dict()) == [["lm_head.weight", "transformer.wte.weight"]]
    assert shared_tensor_groups(untied.state_dict()) == []
    assert "TC301" in trainer_compat.check(Wrapper, args=SAVE).codes()
    assert "TC301" not in trainer_compat.check(Wrapper, args=SAVE, init_kwargs={"tie": False}).codes()


def test_an_instance_is_checked_as_it_is_never_copied_nor_moved():
    model = Wrapper()
    before = model.model.lm_head.weight
    subject = build_subject(model)
    assert subject.instance is model and subject.rebuild is None
    assert "TC301" in trainer_compat.check(model, args=SAVE).codes()
    assert model.model.lm_head.weight is before and before.device.type == "cpu"


def test_an_init_that_needs_real_data_falls_back_to_the_real_device():
    subject = build_subject(NeedsData)
    assert _device(subject) == "cpu" and subject.instance.scale == 1.0
    assert "TC301" in trainer_compat.check(NeedsData, args=SAVE).codes()


def test_from_pretrained_builds_from_a_local_config_on_meta(tmp_path):
    tiny_causal_lm(tie=True).config.save_pretrained(tmp_path)

    class Loads(Wrapper):
        def __init__(self):
            nn.Module.__init__(self)
            from transformers import AutoModelForCausalLM, GPT2LMHeadModel

            self.model = GPT2LMHeadModel.from_pretrained(str(tmp_path))
            self.other = AutoModelForCausalLM.from_pretrained(str(tmp_path))

    subject = build_subject(Loads)
    assert _device(subject) == "meta"
    assert not list(tmp_path.glob("*.safetensors")) and not list(tmp_path.glob("*.bin"))
    assert "TC301" in trainer_compat.check(Loads, args=SAVE).codes()


def test_weights_not_available_offline_mean_a_class_level_check_with_a_note():
    class FromHub(Wrapper):
        def __init__(self):
            nn.Module.__init__(self)
            from transformers import AutoModelForCausalLM

            self.model = AutoModelForCausalLM.from_pretrained("trainer-compat/not-a-real-model-xyz")

    report = trainer_compat.check(FromHub, args={"gradient_checkpointing": True})
    assert any("loads pretrained weights (from_pretrained('trainer-compat/not-a-real-model-xyz'))" in note
               for note in report.skipped), report.skipped
    assert "TC001" in report.codes()
    with pytest.raises(TargetError, match="loads pretrained weights"):
        build_subject(lambda: FromHub().model)


def test_a_llama_70b_shaped_wrapper_is_checked_on_meta():
    cls = load_target(f"{ROOT}/benchmarks/huge_wrapper.py:Llama70BWrapper")
    subject = build_subject(cls)
    assert _device(subject) == "meta"
    assert sum(p.numel() for p in subject.instance.parameters()) > 60e9
    report = trainer_compat.check(cls, args={**SAVE, "gradient_checkpointing": True})
    assert {"TC001", "TC101", "TC301"} <= report.codes()


def test_from_pretrained_is_restored_after_the_build():
    from transformers import AutoModelForCausalLM, GPT2LMHeadModel

    before = (AutoModelForCausalLM.from_pretrained.__func__, GPT2LMHeadModel.from_pretrained.__func__)
    build_subject(Wrapper)
    assert (AutoModelForCausalLM.from_pretrained.__func__, GPT2LMHeadModel.from_pretrained.__func__) == before
    assert before[0].__module__.startswith("transformers.")
