"""A relation-extraction classifier that finds the entity markers' positions in ``input_ids``.

Source: ``BertForREWithEntityStart`` (nn.Module variant with ``num_labels``), a public GitHub file found with the
code index (find_string "class BertForREWithEntityStart", file id 39917918586); the index does not name its
repository, and other copies of the class (PreTrainedModel variants) exist in several student/course repositories.

Kept: an ``nn.Module`` with the encoder as ``encoder`` (``AutoModel``), ``e1_token_id``/``e2_token_id`` of the added
special tokens ``[E1]``/``[E2]``, ``forward(input_ids, attention_mask, labels=None)`` that takes the hidden states at
``(input_ids == e1_token_id).argmax(1)`` and ``(input_ids == e2_token_id).argmax(1)``, a linear classifier over
their concatenation, a cross-entropy loss and a dict output ``{"loss", "logits"}``; the ``save`` method.
Simplified: a tiny BERT built in code, no tokenizer download: the four markers are the ids 96-99 the tokenizer
would have appended. The dataset has the text column the repository's CSV has (``sentence``) and integer labels.

Real Trainer: trains, saves, evaluates with eval_loss; with checkpointing, the wrapper has no
``gradient_checkpointing_enable`` (AttributeError).
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn

from tests.corpus._tiny import ROWS, bert_config

E1, E1_END, E2, E2_END = 96, 97, 98, 99
NUM_LABELS = 4


class BertForREWithEntityStart(nn.Module):
    def __init__(self, model_name: str = "tiny-bert", num_labels: int = NUM_LABELS):
        super().__init__()
        from transformers import AutoModel

        self.encoder = AutoModel.from_config(bert_config())
        self.hidden_size = self.encoder.config.hidden_size

        # Get correct token IDs (the tokenizer appends [E1], [/E1], [E2], [/E2])
        self.e1_token_id = E1
        self.e2_token_id = E2

        # Classifier
        self.classifier = nn.Linear(self.hidden_size * 2, num_labels)

    def forward(self, input_ids, attention_mask, labels=None):
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        sequence_output = outputs.last_hidden_state  # (batch_size, seq_len, hidden_dim)

        # Find positions of [E1] and [E2] tokens
        e1_positions = (input_ids == self.e1_token_id).float().argmax(dim=1)  # (batch_size,)
        e2_positions = (input_ids == self.e2_token_id).float().argmax(dim=1)

        # Extract corresponding hidden states
        batch_indices = torch.arange(input_ids.size(0), device=input_ids.device)
        e1_repr = sequence_output[batch_indices, e1_positions]  # (batch_size, hidden_size)
        e2_repr = sequence_output[batch_indices, e2_positions]

        # Concatenate and classify
        combined = torch.cat([e1_repr, e2_repr], dim=-1)
        logits = self.classifier(combined)

        # Compute loss if labels provided
        loss = None
        if labels is not None:
            loss_fct = nn.CrossEntropyLoss()
            loss = loss_fct(logits, labels)

        return {"loss": loss, "logits": logits}

    def save(self, output_dir):
        os.makedirs(output_dir, exist_ok=True)
        torch.save(self.state_dict(), os.path.join(output_dir, "pytorch_model.bin"))


def Model() -> nn.Module:
    return BertForREWithEntityStart()


def make_data() -> list[dict]:
    """[CLS] w [E1] w [/E1] w [E2] w [/E2] w [SEP], padded to 12; label in 0..3; the raw sentence kept."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(ROWS):
        w = torch.randint(5, 96, (5,), generator=g).tolist()
        seq = [3, w[0], E1, w[1], E1_END, w[2], E2, w[3], E2_END, w[4], 4][: 11]
        seq = seq + [0] * (12 - len(seq))
        rows.append({"input_ids": torch.tensor(seq), "attention_mask": torch.tensor([int(t != 0) for t in seq]),
                     "labels": torch.tensor(i % NUM_LABELS),
                     "sentence": f"sentence {i} with [E1] a [/E1] and [E2] b [/E2]"})
    return rows


collator = None
TRAINER = None
KIND = "trainer"
EXPECTED = {"basic": "ok", "checkpointing": "fails", "save": "ok", "eval": "ok"}
