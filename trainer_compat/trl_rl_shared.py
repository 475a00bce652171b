"""What the TRL rules beyond SFT share (rules/trl_rl.py: TC1105-TC1107; rules/trl_rl_step.py: TC1108, TC1109), and
what TC1102 shares with TC1108: the trainer kinds and their TRL modules, the releases the reads were verified on,
the example wrappers, and the fused-LM-head checks. Rule modules import this, not each other."""

from __future__ import annotations

from typing import Any

from packaging.version import Version

from trainer_compat.analysis import installed_trl
from trainer_compat.example_models import WRAPPER_TEMPLATE
from trainer_compat.protocol.trl import TRL_LINES
from trainer_compat.rules.base import Example
from trainer_compat.subject import Provenance
from trainer_compat.versions import ALWAYS

RL_KINDS = ("dpo", "reward", "grpo")
NAMES = {"dpo": "DPOTrainer", "reward": "RewardTrainer", "grpo": "GRPOTrainer"}
MODULES = {"dpo": "trl.trainer.dpo_trainer", "reward": "trl.trainer.reward_trainer", "grpo": "trl.trainer.grpo_trainer"}
VERIFIED_NEW = Version("1.16")  # the 1.x reads below, as verified in 1.16.0
OLD_UNTIL = Version("0.13")  # TRL 0.12.x: DPO's config reads, its deepcopy reference


def trl_for(ctx: Any) -> Version | None:
    return installed_trl() if ctx.setup.trainer in RL_KINDS else None


_WRAPPER = WRAPPER_TEMPLATE.replace("{more}", ", **kwargs").replace("{pass_more}", ", **kwargs")
_CONFIG = "\n    @property\n    def config(self):\n        return self.model.config\n"
_GENERATION = "\n    @property\n    def generation_config(self):\n        return self.model.generation_config\n"
_GENERATION_SETTER = ("\n    @generation_config.setter\n    def generation_config(self, value):\n"
                      "        self.model.generation_config = value\n")  # GRPO on TRL 1.x + transformers 4.x sets it
_TAGS = "\n    def add_model_tags(self, tags):\n        self.model.add_model_tags(tags)\n"
_BACKBONE = "\n    @property\n    def base_model(self):\n        return self.model.base_model\n"
_HEAD = "\n    def get_output_embeddings(self):\n        return self.model.get_output_embeddings()\n"
_GC_STATE = ("\n    @property\n    def is_gradient_checkpointing(self):\n"
             "        return any(getattr(m, 'gradient_checkpointing', False) for m in self.modules())\n")
_GENERATE = "\n    def generate(self, *args, **kwargs):\n        return self.model.generate(*args, **kwargs)\n"
INIT = _CONFIG + _GENERATION + _GENERATION_SETTER + _TAGS  # what TC1105 asks of DPO/GRPO on TRL 1.16
STEP = _BACKBONE + _HEAD + _GC_STATE  # what their training step reads on TRL 1.16 (TC1108, TC1109)
FULL = INIT + STEP + _GENERATE  # a wrapper DPOTrainer and GRPOTrainer train
PLAIN_LM = "from trainer_compat.testing import tiny_causal_lm\n\n\ndef Model():\n    return tiny_causal_lm(tie=False)\n"
REWARD_MODEL = ("from transformers import GPT2Config, GPT2ForSequenceClassification\n\n\ndef Model():\n"
                "    return GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100, "
                "n_positions=64, pad_token_id=0, num_labels={labels}))\n")


def wrapper(extra: str = "") -> str:
    return _WRAPPER.format(extra=extra)


def rl(code: str, trainer: str, *, since_trl_1: bool = False, **args: object) -> Example:
    """``since_trl_1``: the example holds where CI installs TRL 1.x (the transformers lines of TRL_LINES)."""
    return Example(code, args=dict(args), trainer=trainer, versions=TRL_LINES if since_trl_1 else ALWAYS)


def backbone_problem(ctx: Any, attr: str) -> str | None:
    """What is wrong with the model's backbone for TRL's fused LM head (`self.<attr>(...).last_hidden_state`), or
    None."""
    info = ctx.subject.member(attr)
    if info.provenance is Provenance.MISSING:
        return f"has no `{attr}`"
    value = info.value if info.present and ctx.subject.instance is not None else None
    if value is None or info.provenance is Provenance.UNKNOWN:
        return None
    if value is ctx.subject.instance:
        return f"returns itself as `{attr}` (no backbone under that name)"
    head = getattr(value, "get_output_embeddings", None)
    try:
        has_head = callable(head) and head() is not None
    except Exception:
        has_head = False
    if has_head:
        return (f"has a `{attr}` ({type(value).__name__}) that is a whole LM with its head: its output has "
                "`logits`, not `last_hidden_state`")
    return None

def head_problem(ctx: Any) -> str | None:
    """What is wrong with `get_output_embeddings()` for TRL's fused LM head (it reads `.weight`), or None."""
    info = ctx.subject.member("get_output_embeddings")
    if info.provenance is Provenance.MISSING:
        return "has no `get_output_embeddings`"
    if not info.present or not callable(info.value) or ctx.subject.instance is None:
        return None
    try:
        head = info.value()
    except Exception as exc:
        return f"has a `get_output_embeddings()` that raises {type(exc).__name__}"
    if head is None or getattr(head, "weight", None) is None:
        return "has a `get_output_embeddings()` that returns no layer with a `weight`"
    return None
