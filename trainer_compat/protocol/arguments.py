"""TrainingArguments' protocol: what its ``__post_init__`` makes of the fields the rules read."""

from __future__ import annotations

# The deprecated argument and the name that wins over it when both are given (5.23+; before, only the old names).
ARGUMENT_ALIASES = (("gradient_checkpointing", "activation_checkpointing"),
                    ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs"))
