"""TRL's stack_llama reward-modelling script: a LoRA sequence classifier and a pairwise RewardTrainer.

Source: huggingface/trl, examples/research_projects/stack_llama/scripts/reward_modeling.py (last present in
commit bcd059a3843fa6c332124f959544f48aef3172c8^), classes ``RewardDataCollatorWithPadding`` and ``RewardTrainer``.

Kept: ``AutoModelForSequenceClassification(num_labels=1)`` wrapped by ``get_peft_model`` (LoraConfig SEQ_CLS, r=8,
alpha=32, dropout 0.1), ``pad_token_id`` = eos; the dataset columns ``input_ids_j/attention_mask_j/input_ids_k/
attention_mask_k``; the collator's output with ``"return_loss": True``; ``RewardTrainer.compute_loss(self, model,
inputs, return_outputs=False)`` (the pre-4.46 signature, as in the script); the script's arguments
``remove_unused_columns=False, label_names=[]``.
Simplified: a tiny GPT-2 classifier built in code instead of a pretrained LLaMA; ``tokenizer.pad`` replaced by
right-padding with the eos id; no evaluate/accuracy metric.

Real Trainer (4.46 and later): ``training_step`` calls ``compute_loss(model, inputs, num_items_in_batch=...)``,
which this override does not accept (TypeError at step 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from transformers import Trainer

from tests.corpus._tiny import ROWS, gpt2_config, ids

EOS = 2


def Model() -> nn.Module:
    import transformers
    from peft import LoraConfig, TaskType, get_peft_model

    peft_config = LoraConfig(task_type=TaskType.SEQ_CLS, inference_mode=False, r=8, lora_alpha=32, lora_dropout=0.1)
    model = transformers.GPT2ForSequenceClassification(gpt2_config(num_labels=1))
    model = get_peft_model(model, peft_config)
    model.config.pad_token_id = EOS
    model.config.use_cache = True
    return model


def _pad(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    length = max(len(f["input_ids"]) for f in features)
    input_ids = torch.full((len(features), length), EOS, dtype=torch.long)
    attention_mask = torch.zeros((len(features), length), dtype=torch.long)
    for i, f in enumerate(features):
        input_ids[i, :len(f["input_ids"])] = torch.as_tensor(f["input_ids"])
        attention_mask[i, :len(f["attention_mask"])] = torch.as_tensor(f["attention_mask"])
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@dataclass
class RewardDataCollatorWithPadding:
    padding: bool = True
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        features_j = []
        features_k = []
        for feature in features:
            features_j.append({"input_ids": feature["input_ids_j"], "attention_mask": feature["attention_mask_j"]})
            features_k.append({"input_ids": feature["input_ids_k"], "attention_mask": feature["attention_mask_k"]})
        batch_j = _pad(features_j)
        batch_k = _pad(features_k)
        batch = {
            "input_ids_j": batch_j["input_ids"],
            "attention_mask_j": batch_j["attention_mask"],
            "input_ids_k": batch_k["input_ids"],
            "attention_mask_k": batch_k["attention_mask"],
            "return_loss": True,
        }
        return batch


class RewardTrainer(Trainer):
    # Define how to compute the reward loss. We use the InstructGPT pairwise logloss
    def compute_loss(self, model, inputs, return_outputs=False):
        rewards_j = model(input_ids=inputs["input_ids_j"], attention_mask=inputs["attention_mask_j"])[0]
        rewards_k = model(input_ids=inputs["input_ids_k"], attention_mask=inputs["attention_mask_k"])[0]
        loss = -nn.functional.logsigmoid(rewards_j - rewards_k).mean()
        if return_outputs:
            return loss, {"rewards_j": rewards_j, "rewards_k": rewards_k}
        return loss


def make_data() -> list[dict]:
    """Tokenized "Question: ... Answer: ..." pairs (lists, as datasets.map leaves them), j preferred over k."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(ROWS):
        j, k = ids(g, 8 - i % 3), ids(g, 6 + i % 3)
        rows.append({"input_ids_j": j.tolist(), "attention_mask_j": [1] * len(j),
                     "input_ids_k": k.tolist(), "attention_mask_k": [1] * len(k)})
    return rows


collator = RewardDataCollatorWithPadding()
TRAINER = RewardTrainer
KIND = "trainer"
NEEDS = ("peft",)
ARGS = {"remove_unused_columns": False, "label_names": []}
EXPECTED = {"basic": "fails", "checkpointing": "fails", "save": "fails", "eval": "fails"}
