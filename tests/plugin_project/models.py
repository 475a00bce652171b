import torch.nn as nn

from trainer_compat.testing import tiny_causal_lm


class Good(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)
        self.config = self.model.config

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class Tied(Good):
    """Tied embeddings in a plain nn.Module: the first safetensors checkpoint fails (TC301)."""

    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=True)
        self.config = self.model.config
