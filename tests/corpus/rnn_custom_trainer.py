"""A GloVe RNN sentiment classifier whose forward returns probabilities, with a CustomTrainer computing the loss.

Source: pufanyi/SC4002-Project: src/sc4002/models/rnn.py, class ``RNN`` (commit
0212554f0a124bfc959588636e096ffb21bec148, with ``BaseModel`` from src/sc4002/models/base_model.py);
src/sc4002/train/trainer.py, class ``CustomTrainer(Trainer)`` (commit 362bdd3c1c6f3342416782a02d5948857bcab457);
src/sc4002/train/utils.py, class ``DataCollator`` and ``preprocess_dataset``; src/sc4002/train/train.py.

Kept: ``RNN(BaseModel(nn.Module))`` with ``word_embedding``, ``rnn`` (``nn.RNN``), ``linear_head``;
``forward(inputs=None, input_ids=None, masks=None, **kwargs)`` running the RNN per example over its unmasked tokens
and returning softmax probabilities (a bare tensor, no loss); ``CustomTrainer.compute_loss(self, model, inputs,
return_outputs=False)`` computing the cross-entropy from them; the collator reading ``input_ids`` (one list per row,
``squeeze(0)``) and ``label``, padding, and returning ``input_ids``/``labels``/``masks``; rotten_tomatoes rows keep
their ``text`` and ``label`` columns next to ``input_ids``.
Simplified: the GloVe embedding (downloaded 840B vectors + tokenizer) is an ``nn.Embedding`` of the tiny vocabulary
with the same ``forward(input_ids=...)`` use; input 16 / hidden 16 / 2 layers instead of 300 / 512 / 5.

Real Trainer (4.46 and later): ``training_step`` calls ``compute_loss(model, inputs, num_items_in_batch=...)``,
which the override does not accept (TypeError at step 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Literal, Sequence

import torch
import torch.nn as nn
from transformers import Trainer

from tests.corpus._tiny import ROWS, VOCAB

PAD_ID = 0


class BaseModel(torch.nn.Module):
    def __init__(self, model_name: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.model_name = model_name


class Glove(nn.Module):
    """Stand-in for sc4002.models.glove.Glove: an embedding table looked up by ``forward(input_ids=...)``."""

    def __init__(self, ckpt_path=None, tokenizer_path=None, randomize_unknown=False, dim: int = 16):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, dim, padding_idx=PAD_ID)

    def forward(self, inputs=None, input_ids=None):
        return self.embedding(input_ids)


class RNN(BaseModel):
    def __init__(self, input_dim: int = 16, hidden_dim: int = 16, output_dim: int = 2, model_name: str = "rnn",
                 ckpt_path: str | None = None, tokenizer_path: str | None = None, num_layers: int = 2,
                 randomize_unknown: bool = False, agg_method: Literal["sum", "mean"] = "sum", *args, **kwargs) -> None:
        super().__init__(model_name, *args, **kwargs)
        self.word_embedding = Glove(ckpt_path=ckpt_path, tokenizer_path=tokenizer_path,
                                    randomize_unknown=randomize_unknown, dim=input_dim)
        self.rnn = nn.RNN(input_size=input_dim, hidden_size=hidden_dim, num_layers=num_layers)
        self.linear_head = nn.Linear(hidden_dim, output_dim)
        self.agg_method = agg_method

    def forward(self, inputs: List[str] = None, input_ids: torch.Tensor = None, masks: torch.Tensor = None,
                **kwargs):
        if inputs is None and input_ids is None:
            assert False, "input and input_ids can not both be None"
        if input_ids is None:
            embed = self.word_embedding.forward(inputs)
        elif inputs is None:
            embed = self.word_embedding.forward(input_ids=input_ids)

        if masks is not None:
            output = []
            for em, mask in zip(embed, masks):
                o, hid = self.rnn(em[mask].unsqueeze(0))
                if self.agg_method == "mean":
                    output.append(o.mean(dim=1))
                else:
                    output.append(o.sum(dim=1))
            output = torch.concat(output)
        else:
            output, hidden_state = self.rnn(embed)
            if self.agg_method == "mean":
                output = output.mean(dim=1)
            else:
                output = output.sum(dim=1)
        logits = self.linear_head(output)
        logits = nn.functional.softmax(logits, dim=1)
        return logits


class CustomTrainer(Trainer):
    def compute_loss(self, model: BaseModel, inputs, return_outputs=False):
        input_ids = inputs["input_ids"]
        labels = inputs["labels"]
        masks = inputs["masks"]
        logits = model(input_ids=input_ids, masks=masks)
        loss = nn.functional.cross_entropy(logits, labels)
        return (loss, dict(logits=logits)) if return_outputs else loss


@dataclass
class DataCollator:
    pad_id: int = PAD_ID
    pad_side: str = "right"

    def pad_sequence(self, input_ids, batch_first, padding_value):
        if self.pad_side == "left":
            input_ids = [torch.flip(_input_ids, [0]) for _input_ids in input_ids]
        input_ids = torch.nn.utils.rnn.pad_sequence(input_ids, batch_first=batch_first, padding_value=padding_value)
        if self.pad_side == "left":
            input_ids = torch.flip(input_ids, [1])
        return input_ids

    def __call__(self, instances: Sequence[Dict]):
        input_ids, labels = tuple([instance[key] for instance in instances] for key in ("input_ids", "label"))
        input_ids = [torch.tensor(input_id).squeeze(0) for input_id in input_ids]
        labels = torch.tensor(labels)
        input_ids = self.pad_sequence(input_ids, batch_first=True, padding_value=self.pad_id)
        masks = input_ids.ne(self.pad_id)
        return dict(input_ids=input_ids, labels=labels, masks=masks)


def Model() -> nn.Module:
    return RNN()


def make_data() -> list[dict]:
    """rotten_tomatoes after preprocess_dataset: text, label, and input_ids = tokenizer.encode([text])."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(ROWS):
        n = 5 + i % 4
        rows.append({"text": f"a {'good' if i % 2 else 'bad'} movie, review {i}", "label": i % 2,
                     "input_ids": [torch.randint(5, VOCAB, (n,), generator=g).tolist()]})
    return rows


collator = DataCollator()
TRAINER = CustomTrainer
KIND = "trainer"
EXPECTED = {"basic": "fails", "checkpointing": "fails", "save": "fails", "eval": "fails"}
