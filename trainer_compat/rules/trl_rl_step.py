"""TRL 1.16's DPOTrainer and GRPOTrainer at the training step: what they read of the model after ``__init__``
(``trl_rl`` holds what ``__init__`` reads). Verified in the installed TRL 1.16.0 sources, cited as file:line:

* Both call ``add_fused_lm_head(model)`` in ``__init__`` (``trl/trainer/utils.py``): it replaces ``model.forward``
  with one that, called with ``fused_lm_head=True`` (every loss and reference forward: ``dpo_trainer.py``
  ``_compute_loss`` / ``compute_ref_log_probs``, ``grpo_trainer.py`` ``_get_per_token_logps_and_entropies``), runs
  ``self.base_model(...)`` (``self.model`` for a vision-language model before transformers 5), takes its
  ``last_hidden_state`` and projects it with ``self.get_output_embeddings().weight``. No DPOConfig / GRPOConfig
  option avoids it (liger's fused cross-entropy, the only other head, is refused there).
* Both enter ``disable_gradient_checkpointing(self.model)`` (``trl/models/utils.py``) around the reference
  forward (DPO) or the old-log-prob forward (GRPO): it reads ``model.is_gradient_checkpointing`` and, when True,
  calls ``gradient_checkpointing_disable()`` and then ``gradient_checkpointing_enable(gradient_checkpointing_kwargs)``
  again, the kwargs passed positionally.
* GRPO generates the completions with ``unwrapped_model.generate(...)`` (``generate_batch`` with
  ``use_transformers_continuous_batching``; vLLM with ``use_vllm``, which reads neither). Before transformers 5,
  ``generate`` runs inside ``_override_model_generation_config``, which assigns ``model.generation_config`` (and
  assigns it back after): a read-only ``generation_config`` property raises AttributeError there.

TRL 0.12 (CI's 4.46 line) has no GRPOTrainer and a DPOTrainer that reads none of these; releases between 0.12.2 and
1.16 are not installed here, so the rules stay silent on them rather than guess. RewardTrainer reads none of them.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

from packaging.version import Version

from trainer_compat.analysis import backbone_attr as _backbone_attr
from trainer_compat.findings import Finding, Location, Severity
from trainer_compat.protocol.sites import library_site
from trainer_compat.protocol.trl import TRL_LINES
from trainer_compat.rules.base import Context, Example, Rule
from trainer_compat.subject import Provenance
from trainer_compat.trl_rl_shared import (
    _BACKBONE,
    _CONFIG,
    _GC_STATE,
    _GENERATE,
    _GENERATION,
    _HEAD,
    _TAGS,
    FULL,
    INIT,
    MODULES,
    NAMES,
    PLAIN_LM,
    VERIFIED_NEW,
    backbone_problem,
    head_problem,
    rl,
    wrapper,
)
from trainer_compat.trl_rl_shared import trl_for as _trl
from trainer_compat.versions import VersionRange

STEP_KINDS = ("dpo", "grpo")
STEP_ONLY = _BACKBONE + _HEAD + _GC_STATE
_WHOLE_LM = "\n    @property\n    def base_model(self):\n        return self.model\n"
_GC_KEYWORDS = ("\n    def gradient_checkpointing_enable(self, **kwargs):\n"
                "        self.model.gradient_checkpointing_enable(**kwargs)\n")
_GC_ENABLE = ("\n    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None, **kwargs):\n"
              "        self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs, **kwargs)\n")
_INPUTS = "\n    def get_input_embeddings(self):\n        return self.model.get_input_embeddings()\n"  # TRL 0.12 + gc
_GC_DISABLE = "\n    def gradient_checkpointing_disable(self):\n        self.model.gradient_checkpointing_disable()\n"
REWARD_WRAPPER = """
import torch.nn as nn
from transformers import GPT2Config, GPT2ForSequenceClassification

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100,
                                                              n_positions=64, pad_token_id=0, num_labels=1))

    @property
    def config(self):
        return self.model.config

    def add_model_tags(self, tags):
        self.model.add_model_tags(tags)

    def forward(self, input_ids, attention_mask=None, **kwargs):
        return self.model(input_ids=input_ids, attention_mask=attention_mask)
"""


def _at(site: Location | None) -> str:
    return f" ({site})" if site else ""


def step_trl(ctx: Context) -> Version | None:
    """The installed TRL when the check is for DPOTrainer / GRPOTrainer and that TRL reads the step members."""
    trl = _trl(ctx)
    return trl if ctx.setup.trainer in STEP_KINDS and trl is not None and trl >= VERIFIED_NEW else None


def _skip_peft(rule: Rule, ctx: Context) -> bool:
    if ctx.subject.is_peft:
        ctx.skip(rule.code, "a PeftModel: TRL patches and reads its base model, which this check does not follow")
    return ctx.subject.is_peft


class RlFusedLmHead(Rule):
    code = "TC1108"
    name = "trl-rl-fused-lm-head"
    severity = Severity.ERROR
    versions = TRL_LINES  # TRL 1.x (verified on 1.16); CI's 4.46 line has TRL 0.12
    summary = "DPOTrainer / GRPOTrainer (TRL 1.16) train through `base_model` + `get_output_embeddings()`."
    explanation = (
        "DPOTrainer and GRPOTrainer on TRL 1.16 give the model a fused LM head in `__init__` "
        "(`add_fused_lm_head`): every loss and reference forward runs `model.base_model(...)` (`model.model` for a "
        "vision-language model before transformers 5), takes its `last_hidden_state`, and projects it with "
        "`model.get_output_embeddings().weight`, in chunks. No DPOConfig or GRPOConfig option avoids it. A wrapper "
        "without them raises AttributeError at the first step; a `base_model` that is the whole LM (its output has "
        "`logits`, not `last_hidden_state`) or the model itself fails the same way. Expose the inner backbone and "
        "its head (`trainer_compat.patch(model, trainer=\"dpo\")` does it at run time). The wrapper's own forward "
        "does not run for the loss: whatever it adds is skipped, as under SFTTrainer (TC1103)."
    )
    fires = (rl(wrapper(INIT + _GC_STATE), "dpo", since_trl_1=True),
             rl(wrapper(INIT + _HEAD + _GC_STATE + _GENERATE), "grpo", since_trl_1=True),
             rl(wrapper(INIT + _WHOLE_LM + _HEAD + _GC_STATE), "dpo", since_trl_1=True))
    silent = (rl(wrapper(FULL), "dpo"), rl(wrapper(FULL), "grpo"), rl(PLAIN_LM, "grpo"),
              rl(REWARD_WRAPPER, "reward"))

    def check(self, ctx: Context) -> Iterator[Finding]:
        trl = step_trl(ctx)
        if trl is None or _skip_peft(self, ctx):
            return
        kind, cls, attr = ctx.setup.trainer, ctx.subject.cls.__name__, _backbone_attr(ctx)
        trainer = NAMES[kind]
        problem = backbone_problem(ctx, attr)
        if problem:
            site = library_site("trl.trainer.utils", r"getattr\(self, backbone_attr\)\(")
            yield self.finding(ctx, f"{cls} {problem}; the fused LM head {trainer} adds on TRL {trl} calls "
                                    f"`self.{attr}(...).last_hidden_state`{_at(site)} at every training step: the "
                                    "first step raises AttributeError", member=attr, feature=kind, call_site=site,
                               trl_version=str(trl),
                               fix=f"expose the backbone: `@property def {attr}(self): return self.model.base_model`")
        problem = head_problem(ctx)
        if problem:
            site = library_site("trl.trainer.utils", r"lm_head = self\.get_output_embeddings\(\)")
            yield self.finding(ctx, f"{cls} {problem}; the fused LM head {trainer} adds on TRL {trl} projects with "
                                    f"`get_output_embeddings().weight`{_at(site)}: the first step raises "
                                    "AttributeError", member="get_output_embeddings", feature=kind, call_site=site,
                               trl_version=str(trl),
                               fix="delegate it: `def get_output_embeddings(self): return "
                                   "self.model.get_output_embeddings()`")


class RlStepMembers(Rule):
    code = "TC1109"
    name = "trl-rl-step-members"
    severity = Severity.ERROR
    versions = TRL_LINES  # TRL 1.x (verified on 1.16); CI's 4.46 line has TRL 0.12
    summary = ("DPOTrainer / GRPOTrainer (TRL 1.16) read `is_gradient_checkpointing` at each step; GRPO calls "
               "`generate`.")
    explanation = (
        "At every step DPOTrainer (around the reference forward) and GRPOTrainer (around generation and the "
        "old-log-prob forward) on TRL 1.16 read `model.is_gradient_checkpointing`; when it is True they call "
        "`gradient_checkpointing_disable()` and then `gradient_checkpointing_enable(gradient_checkpointing_kwargs)` "
        "again, the kwargs passed positionally (a `gradient_checkpointing_enable(self, **kwargs)` raises TypeError "
        "there). GRPOTrainer "
        "generates the completions with `model.generate(...)` (`generate_batch` with "
        "`use_transformers_continuous_batching`; neither with `use_vllm`); before transformers 5 it assigns "
        "`model.generation_config` around `generate` (a read-only property cannot take it). A plain `nn.Module` "
        "wrapper has none of them: the first step raises AttributeError. Delegate them to the inner PreTrainedModel "
        "(`trainer_compat.patch(model, trainer=\"grpo\")` does it at run time); `is_gradient_checkpointing` can "
        "be computed as transformers does: `any(getattr(m, \"gradient_checkpointing\", False) for m in "
        "self.modules())`."
    )
    fires = (rl(wrapper(INIT + _BACKBONE + _HEAD), "dpo", since_trl_1=True),
             rl(wrapper(INIT + _BACKBONE + _HEAD + _GC_STATE), "grpo", since_trl_1=True),
             rl(wrapper(INIT + _BACKBONE + _HEAD + _GC_STATE + _GC_ENABLE + _INPUTS), "dpo", since_trl_1=True,
                gradient_checkpointing=True),
             rl(wrapper(FULL + _GC_KEYWORDS + _GC_DISABLE + _INPUTS), "dpo", since_trl_1=True,
                gradient_checkpointing=True),
             Example(wrapper(_CONFIG + _GENERATION + _TAGS + STEP_ONLY + _GENERATE), trainer="grpo",
                     versions=VersionRange(since="4.55", until="5.0")))  # TRL 1.x on transformers 4.x
    silent = (rl(wrapper(FULL + _GC_ENABLE + _GC_DISABLE + _INPUTS), "dpo", gradient_checkpointing=True),
              rl(wrapper(FULL), "grpo"), rl(REWARD_WRAPPER, "reward"))

    def check(self, ctx: Context) -> Iterator[Finding]:
        trl = step_trl(ctx)
        if trl is None or _skip_peft(self, ctx):
            return
        yield from self._checkpointing(ctx, trl)
        if ctx.setup.trainer == "grpo":
            yield from self._generate(ctx, trl)

    def _missing(self, ctx: Context, member: str) -> bool:
        return ctx.subject.member(member).provenance is Provenance.MISSING

    def _checkpointing(self, ctx: Context, trl: Version) -> Iterator[Finding]:
        kind, cls = ctx.setup.trainer, ctx.subject.cls.__name__
        trainer = NAMES[kind]
        if self._missing(ctx, "is_gradient_checkpointing"):
            site = library_site("trl.models.utils", r"was_enabled = model\.is_gradient_checkpointing")
            yield self.finding(ctx, f"{cls} has no `is_gradient_checkpointing`; {trainer} on TRL {trl} reads it at "
                                    f"every step{_at(site)}: the first step raises AttributeError",
                               member="is_gradient_checkpointing", feature=kind, call_site=site, trl_version=str(trl),
                               fix="`@property def is_gradient_checkpointing(self): return any(getattr(m, "
                                   "\"gradient_checkpointing\", False) for m in self.modules())`")
            return
        on = bool(getattr(ctx.setup.args, "gradient_checkpointing", False))
        if not on or self._missing(ctx, "gradient_checkpointing_enable"):
            return  # TC001 (Trainer enables checkpointing first)
        if not _takes_one_positional(ctx.subject.cls):
            site = library_site("trl.models.utils",
                                r"model\.gradient_checkpointing_enable\(gradient_checkpointing_kwargs\)")
            yield self.finding(ctx, f"{cls}.gradient_checkpointing_enable takes no positional argument; with "
                                    f"gradient_checkpointing on, {trainer} on TRL {trl} re-enables checkpointing "
                                    f"at every step with `gradient_checkpointing_enable(gradient_checkpointing_kwargs)`"
                                    f"{_at(site)}: the first step raises TypeError",
                               member="gradient_checkpointing_enable", feature=kind, call_site=site,
                               trl_version=str(trl),
                               fix="take it positionally: `def gradient_checkpointing_enable(self, "
                                   "gradient_checkpointing_kwargs=None, **kwargs)`")
        if self._missing(ctx, "gradient_checkpointing_disable"):
            site = library_site("trl.models.utils", r"^\s+model\.gradient_checkpointing_disable\(\)")
            yield self.finding(ctx, f"{cls} has no `gradient_checkpointing_disable`; with gradient_checkpointing "
                                    f"on, {trainer} on TRL {trl} calls it at every step{_at(site)} and enables "
                                    "checkpointing again after: the first step raises AttributeError",
                               member="gradient_checkpointing_disable", feature=kind, call_site=site,
                               trl_version=str(trl),
                               fix="delegate it: `def gradient_checkpointing_disable(self): "
                                   "self.model.gradient_checkpointing_disable()`")

    def _generate(self, ctx: Context, trl: Version) -> Iterator[Finding]:
        args = ctx.setup.args
        if getattr(args, "use_vllm", False):
            return
        batching = bool(getattr(args, "use_transformers_continuous_batching", False))
        member = "generate_batch" if batching else "generate"
        if not self._missing(ctx, member):
            if not batching and ctx.version < Version("5.0") and _read_only(ctx.subject.cls, "generation_config"):
                yield self._read_only_generation_config(ctx, trl)
            return
        site = library_site(MODULES["grpo"], rf"= unwrapped_model\.{member}\(")
        yield self.finding(ctx, f"{ctx.subject.cls.__name__} has no `{member}`; GRPOTrainer on TRL {trl} generates "
                                f"the completions with `model.{member}(...)`{_at(site)}: the first step raises "
                                "AttributeError", member=member, feature="grpo", call_site=site, trl_version=str(trl),
                           fix=f"delegate it: `def {member}(self, *args, **kwargs): return "
                               f"self.model.{member}(*args, **kwargs)`")

    def _read_only_generation_config(self, ctx: Context, trl: Version) -> Finding:
        site = library_site("trl.models.utils", r"^\s+model\.generation_config = generation_config")
        return self.finding(ctx, f"{ctx.subject.cls.__name__}.generation_config is a property without a setter; "
                                 f"GRPOTrainer on TRL {trl} with transformers {ctx.version} assigns "
                                 f"`model.generation_config` around generate{_at(site)}: the first step raises "
                                 "AttributeError", member="generation_config", feature="grpo", call_site=site,
                            trl_version=str(trl),
                            fix="give it a setter: `@generation_config.setter def generation_config(self, value): "
                                "self.model.generation_config = value`")


def _read_only(cls: type, name: str) -> bool:
    raw = next((vars(k)[name] for k in cls.__mro__ if name in vars(k)), None)
    return isinstance(raw, property) and raw.fset is None


def _takes_one_positional(cls: type) -> bool:
    """Whether the class's gradient_checkpointing_enable binds ``(self, kwargs)``; True when it cannot be told."""
    func = getattr(cls, "gradient_checkpointing_enable", None)
    if func is None:  # reached through __getattr__ or set on the instance
        return True
    try:
        inspect.signature(func).bind(None, None)
    except TypeError:
        return False
    except ValueError:  # no signature to read
        return True
    return True
