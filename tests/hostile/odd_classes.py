"""Classes that are not what they say (issue #16): a metaclass whose __call__ returns a dict, a lying __class__."""

import torch.nn as nn


class DictMeta(type(nn.Module)):
    def __call__(cls, *args, **kwargs):
        return {"not": "a module"}


class MetaDict(nn.Module, metaclass=DictMeta):
    def forward(self, x):
        return x


class Impostor(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(2, 2)

    @property
    def __class__(self):
        return dict

    def forward(self, input_ids, labels=None):
        return {"loss": self.proj(input_ids.float()).sum()}
