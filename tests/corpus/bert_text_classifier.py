"""A BERT text classifier whose forward returns ``[logits, pooler_output]`` (no loss) under the stock Trainer.

Source: coderLCJ/NlpPractice, NLP_Project/text_classifier_pytorch/module/models/Bert.py, class ``Bert`` (commit
7548105d8dcca527c4573890d1dd41779f6a72e4).

Kept: ``Bert(BertPreTrainedModel)`` with ``self.bert = BertModel(config)`` and an ``fc`` head, no ``post_init()``;
``forward(input_ids, attention_mask, label=None, input_ids_anti=None, label_anti=None)`` returning the list
``[output, output_pooler]``: the repository's own loop computes the loss from ``output``.
Simplified: a tiny BERT built in code (4 classes); the dataset rows (input_ids, attention_mask, ``label``, and the raw
``text``) are given to the stock Trainer, the setup this model gets when moved onto Trainer.

Real Trainer (5.x): the default collator renames the ``label`` column to ``labels``, which ``forward`` does not take
(TypeError at step 1). (Were the label passed as ``label``, the output holds no loss and ``outputs[0]``, the logits,
would be taken as the loss.)
"""

from __future__ import annotations

import torch
import torch.nn as nn
from transformers import BertModel, BertPreTrainedModel

from tests.corpus._tiny import ROWS, bert_config, ids


class Bert(BertPreTrainedModel):

    def __init__(self, config):
        super(Bert, self).__init__(config)
        self.bert = BertModel(config)
        self.hidden_size = config.hidden_size
        self.num_classes = config.num_labels
        self.fc = nn.Linear(self.hidden_size, self.num_classes)

    def forward(self, input_ids, attention_mask, label=None, input_ids_anti=None, label_anti=None):
        # inference
        output_bert = self.bert(input_ids, attention_mask=attention_mask)  # (batch_size, sen_length, hidden_size)
        output_pooler = output_bert.pooler_output
        output = self.fc(output_pooler)

        return [output, output_pooler]


def Model() -> nn.Module:
    return Bert(bert_config(num_labels=4))


def make_data() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(ROWS):
        x = torch.cat([torch.tensor([3]), ids(g, 6), torch.tensor([4])])
        rows.append({"input_ids": x, "attention_mask": torch.ones_like(x), "label": torch.tensor(i % 4),
                     "text": f"news headline {i}"})
    return rows


collator = None
TRAINER = None
KIND = "trainer"
EXPECTED = {"basic": "fails", "checkpointing": "fails", "save": "fails", "eval": "fails"}
