"""Targets for the golden-file tests: the same findings on every supported transformers."""

import torch.nn as nn

from trainer_compat.testing import tiny_causal_lm


class TiedWrapper(nn.Module):
    """forward(**kwargs) hides its inputs; the tied embeddings break the first safetensors checkpoint."""

    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=True)
        self.config = self.model.config

    def forward(self, **kwargs):
        return self.model(**kwargs)


class Suppressed(nn.Module):  # trainer-compat: ignore[TC301, TC5] weights are re-tied by our loader
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=True)
        self.config = self.model.config

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class Clean(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)
        self.config = self.model.config

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class NeedsArgs(nn.Module):
    """Built only with arguments: checked for what the class alone shows, the rest listed as skipped."""

    def __init__(self, hidden_size):
        super().__init__()
        self.model = tiny_causal_lm(tie=True)
        self.config = self.model.config

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


def tiny_lm():
    """A factory: its model's class lives in the installed transformers, so places point here instead."""
    return tiny_causal_lm(tie=False)
