"""A T5 wrapper for unscrambling informal Persian sentences, trained with the stock Seq2SeqTrainer.

Source: ashkanb77/Unscrambling_informals, model.py, class ``UnscramblingInFormalModule`` (commit
d7538531b5184ba8c17d10b911eed4752e1d2a4c); the dataset is ``UnscramblingInFormalDataset`` in dataset.py.

Kept: an ``nn.Module`` holding ``T5ForConditionalGeneration`` as ``t5_model`` (``return_dict=True``) with
``forward(self, input_ids, attention_mask, labels)`` passing the three on; no generation or checkpointing members.
Simplified: a tiny T5 built in code instead of ``from_pretrained(model_name)``; the repository tokenizes
(shuffled informal sentence, formal sentence) text pairs in its own training loop. Here the rows are those pairs
already tokenized (input_ids, attention_mask, labels) with the two text columns kept (``informal``, ``formal``),
and the stock ``Seq2SeqTrainer`` trains them (the setup this wrapper gets when moved onto Trainer).

Real Trainer (5.x): trains and evaluates with eval_loss; the first checkpoint fails (safetensors refuses the tied
shared/embed_tokens/lm_head tensors of the plain nn.Module state dict); with checkpointing the wrapper has no
``gradient_checkpointing_enable`` (AttributeError).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import T5ForConditionalGeneration

from tests.corpus._tiny import ROWS, ids, t5_config


class UnscramblingInFormalModule(nn.Module):
    def __init__(self, model_name="tiny-t5"):
        super(UnscramblingInFormalModule, self).__init__()
        self.t5_model = T5ForConditionalGeneration(t5_config(return_dict=True))

    def forward(self, input_ids, attention_mask, labels):
        return self.t5_model(
            input_ids=input_ids, attention_mask=attention_mask,
            labels=labels
        )


def Model() -> nn.Module:
    return UnscramblingInFormalModule()


def make_data() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(ROWS):
        target = torch.cat([ids(g, 6), torch.tensor([1])])
        source = torch.cat([target[:-1][torch.randperm(6, generator=g)], torch.tensor([1])])
        rows.append({"input_ids": source, "attention_mask": torch.ones_like(source), "labels": target,
                     "informal": f"shuffled informal sentence {i}", "formal": f"formal sentence {i}"})
    return rows


collator = None
TRAINER = None
KIND = "seq2seq"
EXPECTED = {"basic": "ok", "checkpointing": "fails", "save": "fails", "eval": "ok"}
