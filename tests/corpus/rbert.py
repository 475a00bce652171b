"""R-BERT: relation classification from the [CLS] vector and the averaged entity spans (SemEval-2010 Task 8).

Source: monologg/R-BERT, model.py, classes ``FCLayer`` and ``RBERT`` (commit 1bad2cf860392fca00c1d4da6c38921d0583f5b0).

Kept: ``RBERT(BertPreTrainedModel)`` building ``self.bert`` from ``PRETRAINED_MODEL_MAP[args.model_type]`` and
three ``FCLayer`` heads plus ``label_classifier``, without calling ``post_init()`` (as in the repository);
``forward(input_ids, attention_mask, token_type_ids, labels, e1_mask, e2_mask)``: every argument required, entity
masks averaged over the sequence output, and the tuple ``(loss, logits, ...)`` returned (loss first when labels are
given).
Simplified: a tiny BERT config built in code (``args`` is a namespace with ``model_type='bert'`` and
``dropout_rate``); the repository trains with its own loop (``trainer.py``, which maps its TensorDataset to these
keyword names); here the stock Trainer gets the same features as dict rows (input_ids, attention_mask,
token_type_ids, labels, e1_mask, e2_mask) plus the raw ``sentence`` column.

Real Trainer (5.x): trains, checkpoints, saves and evaluates with eval_loss (the missing post_init() does not matter
there).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn as nn
from transformers import AlbertModel, BertModel, BertPreTrainedModel, RobertaModel

from tests.corpus._tiny import ROWS, bert_config

PRETRAINED_MODEL_MAP = {
    'bert': BertModel,
    'roberta': RobertaModel,
    'albert': AlbertModel
}

NUM_LABELS = 19  # SemEval-2010 Task 8


class FCLayer(nn.Module):
    def __init__(self, input_dim, output_dim, dropout_rate=0., use_activation=True):
        super(FCLayer, self).__init__()
        self.use_activation = use_activation
        self.dropout = nn.Dropout(dropout_rate)
        self.linear = nn.Linear(input_dim, output_dim)
        self.tanh = nn.Tanh()

    def forward(self, x):
        x = self.dropout(x)
        if self.use_activation:
            x = self.tanh(x)
        return self.linear(x)


class RBERT(BertPreTrainedModel):
    def __init__(self, config, args):
        super(RBERT, self).__init__(config)
        self.bert = PRETRAINED_MODEL_MAP[args.model_type](config=config)  # Load pretrained bert

        self.num_labels = config.num_labels

        self.cls_fc_layer = FCLayer(config.hidden_size, config.hidden_size, args.dropout_rate)
        self.e1_fc_layer = FCLayer(config.hidden_size, config.hidden_size, args.dropout_rate)
        self.e2_fc_layer = FCLayer(config.hidden_size, config.hidden_size, args.dropout_rate)
        self.label_classifier = FCLayer(config.hidden_size * 3, config.num_labels, args.dropout_rate,
                                        use_activation=False)

    @staticmethod
    def entity_average(hidden_output, e_mask):
        e_mask_unsqueeze = e_mask.unsqueeze(1)  # [b, 1, j-i+1]
        length_tensor = (e_mask != 0).sum(dim=1).unsqueeze(1)  # [batch_size, 1]

        sum_vector = torch.bmm(e_mask_unsqueeze.float(), hidden_output).squeeze(1)
        avg_vector = sum_vector.float() / length_tensor.float()  # broadcasting
        return avg_vector

    def forward(self, input_ids, attention_mask, token_type_ids, labels, e1_mask, e2_mask):
        outputs = self.bert(input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids)  # sequence_output, pooled_output, ...
        sequence_output = outputs[0]
        pooled_output = outputs[1]  # [CLS]

        # Average
        e1_h = self.entity_average(sequence_output, e1_mask)
        e2_h = self.entity_average(sequence_output, e2_mask)

        # Dropout -> tanh -> fc_layer
        pooled_output = self.cls_fc_layer(pooled_output)
        e1_h = self.e1_fc_layer(e1_h)
        e2_h = self.e2_fc_layer(e2_h)

        # Concat -> fc_layer
        concat_h = torch.cat([pooled_output, e1_h, e2_h], dim=-1)
        logits = self.label_classifier(concat_h)

        outputs = (logits,) + outputs[2:]  # add hidden states and attention if they are here

        # Softmax
        if labels is not None:
            if self.num_labels == 1:
                loss_fct = nn.MSELoss()
                loss = loss_fct(logits.view(-1), labels.view(-1))
            else:
                loss_fct = nn.CrossEntropyLoss()
                loss = loss_fct(logits.view(-1, self.num_labels), labels.view(-1))

            outputs = (loss,) + outputs

        return outputs  # (loss), logits, (hidden_states), (attentions)


def Model() -> nn.Module:
    return RBERT(bert_config(num_labels=NUM_LABELS), SimpleNamespace(model_type="bert", dropout_rate=0.1))


def make_data() -> list[dict]:
    """convert_examples_to_features: "[CLS] w $ e1 $ w # e2 # w [SEP]", masks over the entity tokens."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(ROWS):
        w = torch.randint(5, 100, (6,), generator=g).tolist()
        seq = [3, w[0], 6, w[1], 6, w[2], 7, w[3], w[4], 7, w[5], 4]
        e1 = [0] * 12
        e2 = [0] * 12
        e1[3] = 1
        e2[7] = e2[8] = 1
        rows.append({"input_ids": torch.tensor(seq), "attention_mask": torch.ones(12, dtype=torch.long),
                     "token_type_ids": torch.zeros(12, dtype=torch.long), "labels": torch.tensor(i % NUM_LABELS),
                     "e1_mask": torch.tensor(e1), "e2_mask": torch.tensor(e2),
                     "sentence": f"The <e1>cause</e1> of the <e2>effect</e2> number {i}"})
    return rows


collator = None
TRAINER = None
KIND = "trainer"
EXPECTED = {"basic": "ok", "checkpointing": "ok", "save": "ok", "eval": "ok"}
