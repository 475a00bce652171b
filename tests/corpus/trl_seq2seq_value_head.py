"""TRL's value-head seq2seq LM under the stock Seq2SeqTrainer.

Source: huggingface/trl, trl/experimental/ppo/modeling_value_head.py (commit f2cd57710ae345ea6428ae95363267fcf38a3dc8;
trl/models/modeling_value_head.py in TRL < 0.20), class ``AutoModelForSeq2SeqLMWithValueHead`` (its base classes
``PreTrainedModelWrapper`` and ``ValueHead`` are the copies in tests/corpus/trl_value_head.py, same file upstream).

Kept: ``lm_head_namings`` and the ``_has_lm_head`` check, ``is_encoder_decoder = True``; ``forward(input_ids=None,
past_key_values=None, attention_mask=None, return_past_key_values=False, **kwargs)`` forcing
``output_hidden_states=True``, reading ``decoder_hidden_states[-1]`` and returning ``(lm_logits, loss, value)``; the
``v_head.``-prefixed ``state_dict``.
Simplified: no from_pretrained/PEFT/device-map hooks; the LM is a tiny T5 built in code (untied head: the tied
default would first fail on saving). The data is a plain seq2seq set (input_ids, attention_mask, labels).

Real Trainer (5.x): ``remove_unused_columns`` drops ``labels`` (``forward`` names no label, only ``**kwargs``), so T5
gets no decoder input: "You must specify exactly one of input_ids or inputs_embeds" at step 1. (With the columns
kept, ``outputs[0]``, the logits, would be taken as the loss.)
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tests.corpus._tiny import ROWS, ids, t5_config
from tests.corpus.trl_value_head import PreTrainedModelWrapper, ValueHead


class AutoModelForSeq2SeqLMWithValueHead(PreTrainedModelWrapper):
    lm_head_namings = ["lm_head", "embed_out", "output_projection"]
    supported_args = ("summary_dropout_prob", "v_head_initializer_range", "v_head_init_strategy")

    def __init__(self, pretrained_model, **kwargs):
        super().__init__(pretrained_model, **kwargs)
        self.is_encoder_decoder = True

        if not self._has_lm_head():
            raise ValueError("The model does not have a language model head, please use a model that has one.")

        self.v_head = ValueHead(self.pretrained_model.config)

    def _has_lm_head(self):
        for name, _module in self.pretrained_model.named_modules():
            if any(attribute in name for attribute in self.lm_head_namings):
                return True
        return False

    def state_dict(self, *args, **kwargs):
        if not self.is_peft_model:
            pretrained_model_state_dict = self.pretrained_model.state_dict(*args, **kwargs)
        else:
            pretrained_model_state_dict = {}
        v_head_state_dict = self.v_head.state_dict(*args, **kwargs)
        for k, v in v_head_state_dict.items():
            pretrained_model_state_dict[f"v_head.{k}"] = v
        return pretrained_model_state_dict

    def forward(self, input_ids=None, past_key_values=None, attention_mask=None, return_past_key_values=False,
                **kwargs):
        kwargs["past_key_values"] = past_key_values

        base_model_output = self.pretrained_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=True,  # We force the model to output hidden states
            **kwargs,
        )

        last_hidden_state = base_model_output.decoder_hidden_states[-1]
        lm_logits = base_model_output.logits
        loss = base_model_output.loss

        value = self.v_head(last_hidden_state).squeeze(-1)

        if lm_logits.dtype != torch.float32:
            lm_logits = lm_logits.float()

        if return_past_key_values:
            return (lm_logits, loss, value, base_model_output.past_key_values)
        return (lm_logits, loss, value)

    def generate(self, *args, **kwargs):
        return self.pretrained_model.generate(*args, **kwargs)


def Model() -> nn.Module:
    import transformers

    return AutoModelForSeq2SeqLMWithValueHead(
        transformers.T5ForConditionalGeneration(t5_config(tie_word_embeddings=False)))


def make_data() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(ROWS):
        x, y = ids(g), ids(g, 5)
        rows.append({"input_ids": x, "attention_mask": torch.ones_like(x), "labels": y})
    return rows


collator = None
TRAINER = None
KIND = "seq2seq"
EXPECTED = {"basic": "fails", "checkpointing": "fails", "save": "fails", "eval": "fails"}
