"""TRL's value-head causal LM under the stock Trainer.

Source: huggingface/trl, trl/experimental/ppo/modeling_value_head.py (commit f2cd57710ae345ea6428ae95363267fcf38a3dc8;
trl/models/modeling_value_head.py in TRL < 0.20), classes ``PreTrainedModelWrapper``, ``ValueHead`` and
``AutoModelForCausalLMWithValueHead``.

Kept: the wrapper is a plain ``nn.Module`` holding the LM as ``pretrained_model``; ``config`` and the
gradient-checkpointing methods are copied from it as instance attributes in ``__init__``; ``forward(input_ids=None,
past_key_values=None, attention_mask=None, return_past_key_values=False, **kwargs)`` forces
``output_hidden_states=True`` and returns the tuple ``(lm_logits, loss, value)``; ``state_dict`` prefixes the value
head with ``v_head.``.
Simplified: no ``from_pretrained``/PEFT/8-bit handling (``is_peft_model`` is False), no multi-adapter reward
support; the LM is a tiny GPT-2 built in code. The data is a plain language-modelling set (input_ids,
attention_mask, labels) that a user fine-tuning the policy with the stock Trainer would pass.

Real Trainer: Trainer takes ``outputs[0]`` (the logits) as the loss: backward of a non-scalar fails at step 1.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tests.corpus._tiny import ROWS, gpt2_config, ids


class PreTrainedModelWrapper(nn.Module):
    def __init__(self, pretrained_model=None, score_module=None, supports_rm_adapter=False, rm_adapter_name=None,
                 **kwargs):
        super().__init__()
        self.pretrained_model = pretrained_model

        self.config = pretrained_model.config
        self.prepare_inputs_for_generation = pretrained_model.prepare_inputs_for_generation
        self.is_loaded_in_8bit = getattr(pretrained_model, "is_loaded_in_8bit", False)
        self.is_loaded_in_4bit = getattr(pretrained_model, "is_loaded_in_4bit", False)
        self.is_sequential_parallel = False

        if hasattr(pretrained_model, "gradient_checkpointing_disable"):
            self.gradient_checkpointing_disable = pretrained_model.gradient_checkpointing_disable

        if hasattr(pretrained_model, "gradient_checkpointing_enable"):
            self.gradient_checkpointing_enable = pretrained_model.gradient_checkpointing_enable

        if hasattr(pretrained_model, "enable_input_require_grads"):
            self.enable_input_require_grads = pretrained_model.enable_input_require_grads

        self.supports_rm_adapter = supports_rm_adapter
        self.rm_adapter_name = rm_adapter_name
        self.policy_adapter_name = "default"
        self.is_peft_model = False
        if score_module is not None:
            self.score = score_module


class ValueHead(nn.Module):
    def __init__(self, config, **kwargs):
        super().__init__()
        if not hasattr(config, "summary_dropout_prob"):
            summary_dropout_prob = kwargs.pop("summary_dropout_prob", 0.1)
        else:
            summary_dropout_prob = config.summary_dropout_prob
        self.dropout = nn.Dropout(summary_dropout_prob) if summary_dropout_prob else nn.Identity()
        if hasattr(config, "word_embed_proj_dim"):
            hidden_size = config.word_embed_proj_dim
        else:
            hidden_size = config.hidden_size
        self.summary = nn.Linear(hidden_size, 1)
        self.flatten = nn.Flatten()

    def forward(self, hidden_states):
        output = self.dropout(hidden_states)
        if output.dtype != self.summary.weight.dtype:
            output = output.to(self.summary.weight.dtype)
        return self.summary(output)


class AutoModelForCausalLMWithValueHead(PreTrainedModelWrapper):
    supported_args = ("summary_dropout_prob", "v_head_initializer_range", "v_head_init_strategy")

    def __init__(self, pretrained_model, **kwargs):
        super().__init__(pretrained_model, **kwargs)
        self.v_head = ValueHead(self.pretrained_model.config)

    def forward(self, input_ids=None, past_key_values=None, attention_mask=None, return_past_key_values=False,
                **kwargs):
        kwargs["output_hidden_states"] = True  # this had already been set in the LORA / PEFT examples
        kwargs["past_key_values"] = past_key_values

        base_model_output = self.pretrained_model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

        last_hidden_state = base_model_output.hidden_states[-1]
        lm_logits = base_model_output.logits
        loss = base_model_output.loss

        if last_hidden_state.device != self.v_head.summary.weight.device:
            last_hidden_state = last_hidden_state.to(self.v_head.summary.weight.device)

        value = self.v_head(last_hidden_state).squeeze(-1)

        if lm_logits.dtype != torch.float32:
            lm_logits = lm_logits.float()

        if return_past_key_values:
            return (lm_logits, loss, value, base_model_output.past_key_values)
        return (lm_logits, loss, value)

    def generate(self, *args, **kwargs):
        return self.pretrained_model.generate(*args, **kwargs)

    def state_dict(self, *args, **kwargs):
        if not self.is_peft_model:
            pretrained_model_state_dict = self.pretrained_model.state_dict(*args, **kwargs)
        else:
            pretrained_model_state_dict = {}
        v_head_state_dict = self.v_head.state_dict(*args, **kwargs)
        for k, v in v_head_state_dict.items():
            pretrained_model_state_dict[f"v_head.{k}"] = v
        return pretrained_model_state_dict


def Model() -> nn.Module:
    import transformers

    return AutoModelForCausalLMWithValueHead(transformers.GPT2LMHeadModel(gpt2_config(tie_word_embeddings=False)))


def make_data() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(ROWS):
        x = ids(g)
        rows.append({"input_ids": x, "attention_mask": torch.ones_like(x), "labels": x.clone()})
    return rows


collator = None
TRAINER = None
KIND = "trainer"
EXPECTED = {"basic": "fails", "checkpointing": "fails", "save": "fails", "eval": "fails"}
