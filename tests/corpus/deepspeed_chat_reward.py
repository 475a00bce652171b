"""DeepSpeed-Chat's pairwise reward model, trained with the stock Trainer.

Source: microsoft/DeepSpeedExamples, applications/DeepSpeed-Chat/dschat/utils/model/reward_model.py, class
``RewardModel`` (commit 83757d9c937daabd1089a08051061706cb73900d); the collator is ``DataCollatorReward`` from
applications/DeepSpeed-Chat/dschat/utils/data/data_utils.py.

Kept: an ``nn.Module`` holding the base transformer (``AutoModel``, no LM head) as ``rwtransformer`` and a
``v_head``; ``gradient_checkpointing_enable(self)`` takes no arguments; ``forward`` takes the chosen and the
rejected sequences stacked in one batch (first half chosen), computes the pairwise loss over the diverging tokens
and returns ``{"loss", "chosen_mean_scores", "rejected_mean_scores"}``; no label parameter.
Simplified: the base model is a tiny ``LlamaModel`` built in code (``PAD_ID`` 0 instead of a tokenizer's);
``forward_value`` (PPO) is left out. The repository trains with its own DeepSpeed loop; here the stock
``Trainer`` runs it with the paired dataset rows as dicts (the repository's rows are tuples ``(chosen_ids,
chosen_mask, rejected_ids, rejected_mask)``; the collator reads the same four fields by name) and
``remove_unused_columns=False``, which any paired-reward Trainer setup needs (TRL's stack_llama script sets it).

Real Trainer (5.x): trains and saves; with checkpointing, ``gradient_checkpointing_enable()`` rejects Trainer's
``gradient_checkpointing_kwargs`` (TypeError); evaluation yields no ``eval_loss`` (no label parameter, no
``return_loss``).
"""

from __future__ import annotations

import torch
from torch import nn

from tests.corpus._tiny import ROWS, ids, llama_config


class RewardModel(nn.Module):

    def __init__(self, base_model, tokenizer, num_padding_at_beginning=0, compute_fp32_loss=False):
        super().__init__()
        self.config = base_model.config
        self.num_padding_at_beginning = num_padding_at_beginning
        if hasattr(self.config, "word_embed_proj_dim"):
            self.v_head = nn.Linear(self.config.word_embed_proj_dim, 1, bias=False)
        else:
            self.config.n_embd = self.config.hidden_size if hasattr(self.config, "hidden_size") else self.config.n_embd
            self.v_head = nn.Linear(self.config.n_embd, 1, bias=False)
        self.rwtransformer = base_model
        self.PAD_ID = tokenizer.pad_token_id
        self.compute_fp32_loss = compute_fp32_loss

    def gradient_checkpointing_enable(self):
        self.rwtransformer.gradient_checkpointing_enable()

    def gradient_checkpointing_disable(self):
        self.rwtransformer.gradient_checkpointing_disable()

    def forward(self, input_ids=None, past_key_values=None, attention_mask=None, position_ids=None, head_mask=None,
                inputs_embeds=None, use_cache=False):
        loss = None

        if self.config.model_type == "llama":
            kwargs = dict()
        else:
            kwargs = dict(head_mask=head_mask)

        transformer_outputs = self.rwtransformer(input_ids, past_key_values=past_key_values,
                                                 attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                                 use_cache=use_cache, **kwargs)

        hidden_states = transformer_outputs[0]
        rewards = self.v_head(hidden_states).squeeze(-1)
        chosen_mean_scores = []
        rejected_mean_scores = []

        assert len(input_ids.shape) == 2
        bs = input_ids.shape[0] // 2
        seq_len = input_ids.shape[1]

        chosen_ids = input_ids[:bs]
        rejected_ids = input_ids[bs:]
        chosen_rewards = rewards[:bs]
        rejected_rewards = rewards[bs:]

        loss = 0.
        for i in range(bs):
            chosen_id = chosen_ids[i]
            rejected_id = rejected_ids[i]
            chosen_reward = chosen_rewards[i]
            rejected_reward = rejected_rewards[i]

            c_inds = (chosen_id == self.PAD_ID).nonzero()
            c_ind = c_inds[self.num_padding_at_beginning].item() if len(
                c_inds) > self.num_padding_at_beginning else seq_len
            check_divergence = (chosen_id != rejected_id).nonzero()

            if len(check_divergence) == 0:
                end_ind = rejected_reward.size(-1)
                divergence_ind = end_ind - 1
                r_ind = c_ind
            else:
                r_inds = (rejected_id == self.PAD_ID).nonzero()
                r_ind = r_inds[self.num_padding_at_beginning].item(
                ) if len(r_inds) > self.num_padding_at_beginning else seq_len
                end_ind = max(c_ind, r_ind)
                divergence_ind = check_divergence[0]
            assert divergence_ind > 0
            c_truncated_reward = chosen_reward[divergence_ind:end_ind]
            r_truncated_reward = rejected_reward[divergence_ind:end_ind]
            chosen_mean_scores.append(chosen_reward[c_ind - 1])
            rejected_mean_scores.append(rejected_reward[r_ind - 1])

            if self.compute_fp32_loss:
                c_truncated_reward = c_truncated_reward.float()
                r_truncated_reward = r_truncated_reward.float()
            loss += -torch.nn.functional.logsigmoid(c_truncated_reward - r_truncated_reward).mean()

        loss = loss / bs
        chosen_mean_scores = torch.stack(chosen_mean_scores)
        rejected_mean_scores = torch.stack(rejected_mean_scores)
        return {
            "loss": loss,
            "chosen_mean_scores": chosen_mean_scores,
            "rejected_mean_scores": rejected_mean_scores,
        }


class _Tokenizer:
    pad_token_id = 0


def Model() -> nn.Module:
    import transformers

    return RewardModel(transformers.LlamaModel(llama_config()), _Tokenizer())


class DataCollatorReward:

    def __call__(self, data):
        batch = {}
        batch["input_ids"] = torch.cat([f["chosen_input_ids"] for f in data] + [f["rejected_input_ids"] for f in data],
                                       dim=0)
        batch["attention_mask"] = torch.cat([f["chosen_attention_mask"] for f in data] +
                                            [f["rejected_attention_mask"] for f in data], dim=0)
        return batch


def make_data() -> list[dict]:
    """Prompt + chosen / prompt + rejected, padded to one length (the repository pads in the dataset, shape (1, L))."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(ROWS):
        prompt = ids(g, 4)
        chosen = torch.cat([prompt, ids(g, 3), torch.zeros(1, dtype=torch.long)])
        rejected = torch.cat([prompt, ids(g, 2), torch.zeros(2, dtype=torch.long)])
        rows.append({"chosen_input_ids": chosen[None], "chosen_attention_mask": (chosen != 0).long()[None],
                     "rejected_input_ids": rejected[None], "rejected_attention_mask": (rejected != 0).long()[None]})
    return rows


collator = DataCollatorReward()
TRAINER = None
KIND = "trainer"
ARGS = {"remove_unused_columns": False}
EXPECTED = {"basic": "ok", "checkpointing": "fails", "save": "ok", "eval": "silent"}
