"""Writes a marker file when imported: `--static` must never import it."""

import os
from pathlib import Path

import torch.nn as nn

Path(os.environ.get("TC_HOSTILE_MARKER", "/tmp/trainer_compat_hostile_marker")).write_text("imported")


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        Path(os.environ.get("TC_HOSTILE_MARKER", "/tmp/trainer_compat_hostile_marker") + ".init").write_text("built")
        self.proj = nn.Linear(4, 4)

    def forward(self, input_ids, labels=None):
        return self.proj(input_ids)
