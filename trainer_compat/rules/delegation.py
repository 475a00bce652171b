"""`__getattr__` delegation hazards: look-ups that recurse or raise, writes that shadow."""

from __future__ import annotations

from collections.abc import Iterator

from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Severity
from trainer_compat.rules.base import Context, Example, Rule
from trainer_compat.subject import Provenance, source_location

# Names Trainer asks about with hasattr()/getattr(default) on every run; hasattr() only swallows
# AttributeError, so a look-up that raises anything else crashes Trainer() itself.
PROBED_ON_EVERY_RUN = ("accepts_loss_kwargs", "hf_device_map", "is_parallelizable", "_hf_peft_config_loaded",
                       "is_quantized", "config", "main_input_name", "__trainer_compat_missing__")

_RECURSIVE = """
import torch.nn as nn
from trainer_compat.testing import tiny_causal_lm

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def __getattr__(self, name):
        return getattr(self.model, name)  # self.model itself goes through __getattr__

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
"""
_SAFE = _RECURSIVE.replace("        return getattr(self.model, name)  # self.model itself goes through __getattr__",
                           "        try:\n            return super().__getattr__(name)\n"
                           "        except AttributeError:\n            return getattr(self.model, name)")


class BrokenLookup(Rule):
    code = "TC003"
    name = "getattr-recursion"
    severity = Severity.ERROR
    summary = "Looking up an attribute on the model raises something other than AttributeError."
    explanation = (
        "Trainer probes the model with `hasattr()` / `getattr(model, name, default)`, which only swallow "
        "AttributeError. A `__getattr__` that reads `self.model` (a submodule, itself served by "
        "`nn.Module.__getattr__`) recurses forever; a property that raises crashes the probe. Either makes "
        "`Trainer()` fail before training. Call `super().__getattr__(name)` first and delegate only on "
        "AttributeError."
    )
    fires = (Example(_RECURSIVE),)
    silent = (Example(_SAFE),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        if ctx.subject.instance is None:
            return
        names = list(PROBED_ON_EVERY_RUN) + [r.member for r in ctx.requirements]
        seen: set[str] = set()
        for name in dict.fromkeys(names):
            info = ctx.subject.member(name)
            if info.provenance is not Provenance.BROKEN or info.error in seen:
                continue
            seen.add(info.error or "")
            shown = "a missing attribute" if name == "__trainer_compat_missing__" else f"`{name}`"
            yield self.finding(
                ctx, f"looking up {shown} on {ctx.subject.cls.__name__} raises {info.error}; Trainer's hasattr() "
                     "probes let it through and fail",
                member=None if name.startswith("__trainer") else name, feature=Feature.TRAIN,
                location=info.location,
                fix="in __getattr__, try `return super().__getattr__(name)` first and delegate only on "
                    "AttributeError; make properties raise AttributeError, not other errors")


class ShadowingWrite(Rule):
    code = "TC004"
    name = "shadowing-write"
    severity = Severity.WARNING
    summary = "Trainer assigns a member that the wrapper only delegates: the write lands on the wrapper."
    explanation = (
        "Seq2SeqTrainer assigns `model.generation_config` when `generation_config` is given in the arguments. "
        "On a wrapper that reaches the inner model's `generation_config` through `__getattr__`, the "
        "assignment creates a new attribute on the wrapper; the inner model's `generate` keeps using its own "
        "configuration, and the arguments are silently ignored. Define the member as a property with a setter "
        "that writes through."
    )
    fires = (Example(_SAFE
                     .replace("    def forward(self, input_ids, attention_mask=None, labels=None):",
                              "    def generate(self, *args, **kwargs):\n"
                              "        return self.model.generate(*args, **kwargs)\n\n"
                              "    def forward(self, input_ids, attention_mask=None, labels=None):"),
                     trainer="seq2seq",
                     args={"predict_with_generate": True, "generation_config": {"max_new_tokens": 4}}),)
    silent = (Example(_SAFE, trainer="seq2seq", args={"predict_with_generate": True}),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        args = ctx.setup.args
        if ctx.setup.trainer != "seq2seq" or getattr(args, "generation_config", None) is None:
            return
        info = ctx.subject.member("generation_config")
        if info.provenance is not Provenance.DELEGATED:
            return
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__} reaches `generation_config` through __getattr__; Seq2SeqTrainer "
                 "assigns model.generation_config from the arguments, which creates an attribute on the wrapper "
                 "that the inner model's generate() never reads",
            member="generation_config", feature=Feature.PREDICT_WITH_GENERATE,
            location=source_location(ctx.subject.custom_getattr),
            fix="define `generation_config` as a property whose setter writes to the inner model")
