"""SimCSE's contrastive BERT (unsupervised SimCSE): input_ids of shape (batch, 2, seq).

Source: princeton-nlp/SimCSE, simcse/models.py, classes ``MLPLayer``, ``Similarity``, ``Pooler``, ``BertForCL``
and functions ``cl_init``/``cl_forward``/``sentemb_forward``; the collator is ``OurDataCollatorWithPadding`` from
train.py (commit 49fa580a853752ede55b8c76d9debf748e214d3f).

Kept: ``BertForCL(BertPreTrainedModel)`` with ``self.bert = BertModel(config, add_pooling_layer=False)``, the
``model_args`` keyword, ``forward(input_ids, attention_mask, token_type_ids, ..., labels=None, ..., sent_emb=False,
mlm_input_ids=None, mlm_labels=None)``; ``cl_forward`` flattens (bs, num_sent, len) ids, pools, takes the in-batch
cosine similarities as logits and builds its own labels (``torch.arange``), returns a ``SequenceClassifierOutput``;
the collator flattens the sentence pairs, pads, and reshapes back to (bs, num_sent, len).
Simplified: a tiny BERT built in code; ``tokenizer.pad`` replaced by right-padding with 0; no MLM auxiliary
objective (``do_mlm=False``, the unsupervised default); on transformers 5 ``cl_init`` calls ``post_init()``
instead of ``init_weights()`` (the repository's constructor raises "'BertForCL' object has no attribute
'all_tied_weights_keys'" there: the port any 5.x user makes); no distributed all-gather branch (not taken on one
process). The repository's ``CLTrainer`` overrides ``evaluate`` with SentEval STS-B runs (external data) and
``_save_checkpoint`` for best-metric bookkeeping: it is replaced by the stock Trainer here.

Real Trainer: trains, checkpoints, saves; evaluation yields no ``eval_loss`` (the label parameters ``labels`` /
``mlm_labels`` are absent from the pairs data, so prediction_step computes no loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn as nn
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndCrossAttentions, SequenceClassifierOutput
from transformers.models.bert.modeling_bert import BertLMPredictionHead, BertModel, BertPreTrainedModel

from tests.corpus._tiny import ROWS, bert_config

_TRANSFORMERS_5 = int(__import__("transformers").__version__.split(".")[0]) >= 5


class MLPLayer(nn.Module):
    """Head for getting sentence representations over RoBERTa/BERT's CLS representation."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, features, **kwargs):
        x = self.dense(features)
        x = self.activation(x)
        return x


class Similarity(nn.Module):
    """Dot product or cosine similarity"""

    def __init__(self, temp):
        super().__init__()
        self.temp = temp
        self.cos = nn.CosineSimilarity(dim=-1)

    def forward(self, x, y):
        return self.cos(x, y) / self.temp


class Pooler(nn.Module):
    def __init__(self, pooler_type):
        super().__init__()
        self.pooler_type = pooler_type
        assert self.pooler_type in ["cls", "cls_before_pooler", "avg", "avg_top2", "avg_first_last"]

    def forward(self, attention_mask, outputs):
        last_hidden = outputs.last_hidden_state
        hidden_states = outputs.hidden_states
        if self.pooler_type in ['cls_before_pooler', 'cls']:
            return last_hidden[:, 0]
        elif self.pooler_type == "avg":
            return ((last_hidden * attention_mask.unsqueeze(-1)).sum(1) / attention_mask.sum(-1).unsqueeze(-1))
        elif self.pooler_type == "avg_first_last":
            first_hidden = hidden_states[1]
            last_hidden = hidden_states[-1]
            return ((first_hidden + last_hidden) / 2.0 * attention_mask.unsqueeze(-1)).sum(1) / \
                attention_mask.sum(-1).unsqueeze(-1)
        elif self.pooler_type == "avg_top2":
            second_last_hidden = hidden_states[-2]
            last_hidden = hidden_states[-1]
            return ((last_hidden + second_last_hidden) / 2.0 * attention_mask.unsqueeze(-1)).sum(1) / \
                attention_mask.sum(-1).unsqueeze(-1)
        else:
            raise NotImplementedError


def cl_init(cls, config):
    """Contrastive learning class init function."""
    cls.pooler_type = cls.model_args.pooler_type
    cls.pooler = Pooler(cls.model_args.pooler_type)
    if cls.model_args.pooler_type == "cls":
        cls.mlp = MLPLayer(config)
    cls.sim = Similarity(temp=cls.model_args.temp)
    if _TRANSFORMERS_5:  # ported: 5.x's init_weights() needs post_init()'s bookkeeping (see the docstring)
        cls.post_init()
    else:
        cls.init_weights()


def cl_forward(cls, encoder, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
               head_mask=None, inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
               return_dict=None, mlm_input_ids=None, mlm_labels=None):
    return_dict = return_dict if return_dict is not None else cls.config.use_return_dict
    batch_size = input_ids.size(0)
    # Number of sentences in one instance: 2 (unsupervised / supervised without hard negatives), 3 (with)
    num_sent = input_ids.size(1)

    mlm_outputs = None
    # Flatten input for encoding
    input_ids = input_ids.view((-1, input_ids.size(-1)))  # (bs * num_sent, len)
    attention_mask = attention_mask.view((-1, attention_mask.size(-1)))  # (bs * num_sent len)
    if token_type_ids is not None:
        token_type_ids = token_type_ids.view((-1, token_type_ids.size(-1)))  # (bs * num_sent, len)

    outputs = encoder(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                      position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds,
                      output_attentions=output_attentions,
                      output_hidden_states=True if cls.model_args.pooler_type in ['avg_top2', 'avg_first_last']
                      else False,
                      return_dict=True)

    pooler_output = cls.pooler(attention_mask, outputs)
    pooler_output = pooler_output.view((batch_size, num_sent, pooler_output.size(-1)))  # (bs, num_sent, hidden)

    if cls.pooler_type == "cls":
        pooler_output = cls.mlp(pooler_output)

    z1, z2 = pooler_output[:, 0], pooler_output[:, 1]

    cos_sim = cls.sim(z1.unsqueeze(1), z2.unsqueeze(0))

    labels = torch.arange(cos_sim.size(0)).long().to(cls.device)
    loss_fct = nn.CrossEntropyLoss()

    loss = loss_fct(cos_sim, labels)

    if not return_dict:
        output = (cos_sim,) + outputs[2:]
        return ((loss,) + output) if loss is not None else output
    return SequenceClassifierOutput(loss=loss, logits=cos_sim, hidden_states=outputs.hidden_states,
                                    attentions=outputs.attentions)


def sentemb_forward(cls, encoder, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                    head_mask=None, inputs_embeds=None, labels=None, output_attentions=None,
                    output_hidden_states=None, return_dict=None):
    return_dict = return_dict if return_dict is not None else cls.config.use_return_dict
    outputs = encoder(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                      position_ids=position_ids, head_mask=head_mask, inputs_embeds=inputs_embeds,
                      output_attentions=output_attentions,
                      output_hidden_states=True if cls.pooler_type in ['avg_top2', 'avg_first_last'] else False,
                      return_dict=True)
    pooler_output = cls.pooler(attention_mask, outputs)
    if cls.pooler_type == "cls" and not cls.model_args.mlp_only_train:
        pooler_output = cls.mlp(pooler_output)
    if not return_dict:
        return (outputs[0], pooler_output) + outputs[2:]
    return BaseModelOutputWithPoolingAndCrossAttentions(pooler_output=pooler_output,
                                                        last_hidden_state=outputs.last_hidden_state,
                                                        hidden_states=outputs.hidden_states)


class BertForCL(BertPreTrainedModel):
    _keys_to_ignore_on_load_missing = [r"position_ids"]

    def __init__(self, config, *model_args, **model_kargs):
        super().__init__(config)
        self.model_args = model_kargs["model_args"]
        self.bert = BertModel(config, add_pooling_layer=False)

        if self.model_args.do_mlm:
            self.lm_head = BertLMPredictionHead(config)

        cl_init(self, config)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, head_mask=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, sent_emb=False, mlm_input_ids=None, mlm_labels=None):
        if sent_emb:
            return sentemb_forward(self, self.bert, input_ids=input_ids, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids, position_ids=position_ids, head_mask=head_mask,
                                   inputs_embeds=inputs_embeds, labels=labels, output_attentions=output_attentions,
                                   output_hidden_states=output_hidden_states, return_dict=return_dict)
        else:
            return cl_forward(self, self.bert, input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids, position_ids=position_ids, head_mask=head_mask,
                              inputs_embeds=inputs_embeds, labels=labels, output_attentions=output_attentions,
                              output_hidden_states=output_hidden_states, return_dict=return_dict,
                              mlm_input_ids=mlm_input_ids, mlm_labels=mlm_labels)


MODEL_ARGS = SimpleNamespace(pooler_type="cls", temp=0.05, do_mlm=False, mlp_only_train=False,
                             hard_negative_weight=0, mlm_weight=0.1)


def Model() -> nn.Module:
    return BertForCL(bert_config(), model_args=MODEL_ARGS)


def _pad(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    length = max(len(f["input_ids"]) for f in features)
    return {k: torch.tensor([list(f[k]) + [0] * (length - len(f[k])) for f in features]) for k in features[0]}


@dataclass
class OurDataCollatorWithPadding:
    padding: bool = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    mlm: bool = True

    def __call__(self, features):
        special_keys = ['input_ids', 'attention_mask', 'token_type_ids', 'mlm_input_ids', 'mlm_labels']
        bs = len(features)
        if bs > 0:
            num_sent = len(features[0]['input_ids'])
        else:
            return
        flat_features = []
        for feature in features:
            for i in range(num_sent):
                flat_features.append({k: feature[k][i] if k in special_keys else feature[k] for k in feature})

        batch = _pad(flat_features)

        batch = {k: batch[k].view(bs, num_sent, -1) if k in special_keys else batch[k].view(bs, num_sent, -1)[:, 0]
                 for k in batch}

        if "label" in batch:
            batch["labels"] = batch["label"]
            del batch["label"]
        if "label_ids" in batch:
            batch["labels"] = batch["label_ids"]
            del batch["label_ids"]

        return batch


def make_data() -> list[dict]:
    """What prepare_features leaves for wiki1m (sent0 == sent1): per key, a list of two token lists."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(ROWS):
        n = 6 + i % 3
        sent = [3] + torch.randint(5, 100, (n,), generator=g).tolist() + [4]
        rows.append({"input_ids": [sent, list(sent)], "attention_mask": [[1] * len(sent)] * 2,
                     "token_type_ids": [[0] * len(sent)] * 2})
    return rows


collator = OurDataCollatorWithPadding()
TRAINER = None
KIND = "trainer"
EXPECTED = {"basic": "ok", "checkpointing": "ok", "save": "ok", "eval": "silent"}
