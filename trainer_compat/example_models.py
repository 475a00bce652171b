"""The source of the models the rules' examples build: shared by every rule's fires/silent examples.

Each is a module's source text (the example runner writes it to a file and imports it), so an example reads as
the wrapper it describes. Rules import these; no rule imports another rule.
"""

from __future__ import annotations

WRAPPER_HEAD = """
import torch.nn as nn
from trainer_compat.testing import tiny_causal_lm

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)
"""
KWARGS_WRAPPER = WRAPPER_HEAD + """
    def forward(self, **kwargs):
        return self.model(**kwargs)
"""
EXPLICIT_WRAPPER = WRAPPER_HEAD + """
    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
"""
DROPPING_WRAPPER = WRAPPER_HEAD + """
    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
"""
T5_MODEL = "from trainer_compat.testing import tiny_seq2seq\nModel = tiny_seq2seq\n"
NORMALISING_WRAPPER = WRAPPER_HEAD + """
    def forward(self, input_ids, attention_mask=None, labels=None, **loss_kwargs):
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum")
        return {"loss": loss / loss_kwargs.get("num_items_in_batch", labels.numel()), "logits": logits}
"""

SWALLOWING_SHIM = '''
    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None, **kwargs):
        try:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)
            print("Gradient checkpointing enabled")
        except Exception as exc:
            print(f"Could not enable gradient checkpointing: {exc}")
            self.model.config.use_cache = False
            print("Gradient checkpointing enabled via config (cache disabled)")

'''

# A wrapper whose extra members (``{extra}``) and forward keywords (``{more}``, passed on as ``{pass_more}``) an
# example fills in: ``WRAPPER_TEMPLATE.format(extra=..., more=..., pass_more=...)``.
WRAPPER_TEMPLATE = """
import torch.nn as nn
from trainer_compat.testing import tiny_causal_lm

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)
{extra}
    def forward(self, input_ids, attention_mask=None, labels=None{more}):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels{pass_more})
"""
