"""TC201's DeepSpeed case against the real transformers + DeepSpeed: 'auto' bucket sizes are filled from
config.hidden_size (or config.text_config's) by HfTrainerDeepSpeedConfig.trainer_config_finalize, which Trainer
runs before the first step."""

from __future__ import annotations

import copy
import tempfile

import pytest
from torch import nn

import trainer_compat
from trainer_compat.testing import tiny_causal_lm

pytest.importorskip("deepspeed", reason="the DeepSpeed case is tested against real deepspeed")

ZERO3_AUTO = {"train_micro_batch_size_per_gpu": "auto",
              "zero_optimization": {"stage": 3, "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto",
                                    "stage3_param_persistence_threshold": "auto"}}


class NoConfig(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class InnerConfig(NoConfig):
    @property
    def config(self):
        return self.model.config


class CompositeConfig(NoConfig):
    """A multimodal-style config: hidden_size only under text_config."""

    def __init__(self):
        super().__init__()
        from transformers import PretrainedConfig

        self.config = PretrainedConfig()
        self.config.text_config = self.model.config


def _finalize(model: nn.Module) -> dict:
    """What Trainer does with the DeepSpeed config once it has the model (transformers.integrations.deepspeed)."""
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    config = HfTrainerDeepSpeedConfig(copy.deepcopy(ZERO3_AUTO))
    args = TrainingArguments(tempfile.mkdtemp(), report_to="none", use_cpu=True)
    config.trainer_config_process(args)
    config.trainer_config_finalize(args, model, num_training_steps=10)
    return config.config


def _fires(model: nn.Module) -> bool:
    report = trainer_compat.check(model, args={"deepspeed": copy.deepcopy(ZERO3_AUTO)})
    return any(f.rule == "TC201" and f.feature == "deepspeed" for f in report.findings)


def test_no_config_fails_in_the_real_finalize_where_tc201_fires():
    model = NoConfig()
    assert _fires(model)
    with pytest.raises(ValueError, match="hidden_size"):
        _finalize(model)


@pytest.mark.parametrize("cls", [InnerConfig, CompositeConfig])
def test_a_hidden_size_fills_the_buckets_where_tc201_is_silent(cls):
    model = cls()
    assert not _fires(model)
    hidden = model.model.config.hidden_size
    assert _finalize(model)["zero_optimization"]["reduce_bucket_size"] == hidden * hidden
