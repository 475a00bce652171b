"""TRL beyond SFT (`--trainer dpo|reward|grpo`): what DPOTrainer, RewardTrainer and GRPOTrainer read of the model
in ``__init__``, per installed TRL release. Each read was verified in the installed TRL sources (1.16.0 on the
transformers 5.x and 4.57 lines; 0.12.2 on 4.46, which has no GRPOTrainer) and is cited as file:line:

* TRL 1.16, DPO and GRPO: ``model.config.get_text_config().pad_token_id = ...`` and
  ``model.generation_config.pad_token_id = ...`` (unguarded), ``self.model.add_model_tags(...)`` at the end of
  ``__init__`` (unguarded; RewardTrainer too); RewardTrainer reads ``model.config.num_labels`` and raises ValueError
  unless it is 1. DPOTrainer without ``ref_model`` (and without PEFT or ``precompute_ref_log_probs``) builds the
  reference with ``create_model_from_path(get_config_model_id(self.model.config))``: it reloads the checkpoint the
  config names, it does not copy the model.
* TRL 0.12.2, DPO: ``model.config.is_encoder_decoder`` and ``model.config.model_type`` (unguarded), and with
  ``gradient_checkpointing`` (no ``peft_config``) ``model.get_input_embeddings()`` unless the model has
  ``enable_input_require_grads``;
  ``add_model_tags`` behind ``hasattr``; the reference is ``create_reference_model(model)`` (a deepcopy).
* ``warnings_issued``: read by neither installed release (TRL removed it in #4960); releases between 0.12.2 and
  1.16 are not installed here, so the rules stay silent on them rather than guess.

What DPOTrainer and GRPOTrainer read at the training step (the fused LM head, ``is_gradient_checkpointing``,
``generate``) is in ``trl_rl_step`` (TC1108, TC1109).
"""

from __future__ import annotations

from collections.abc import Iterator

from trainer_compat.findings import Finding, Location, Severity
from trainer_compat.protocol.sites import library_site
from trainer_compat.protocol.trl import TRL_LINES
from trainer_compat.rules.base import Context, Example, Rule
from trainer_compat.subject import Provenance
from trainer_compat.trl_rl_shared import (
    _CONFIG,
    _GENERATION,
    _TAGS,
    FULL,
    MODULES,
    NAMES,
    OLD_UNTIL,
    PLAIN_LM,
    REWARD_MODEL,
    VERIFIED_NEW,
    rl,
    wrapper,
)
from trainer_compat.trl_rl_shared import trl_for as _trl
from trainer_compat.versions import VersionRange


def _at(site: Location | None) -> str:
    return f" ({site})" if site else ""



class TrlInitMembers(Rule):
    code = "TC1105"
    name = "trl-init-members"
    severity = Severity.ERROR
    summary = "DPO/Reward/GRPO trainers' __init__ reads `config`, `generation_config`, `add_model_tags` unguarded."
    explanation = (
        "Beyond Trainer, TRL's preference and RL trainers read the model in `__init__`: on TRL 1.16 DPOTrainer and "
        "GRPOTrainer write the tokenizer's pad token into `model.config.get_text_config()` and "
        "`model.generation_config`, and all three end with `self.model.add_model_tags([...])`; on TRL 0.12 "
        "DPOTrainer reads `model.config.is_encoder_decoder` and `model.config.model_type`, and with "
        "`gradient_checkpointing` hooks `model.get_input_embeddings()` unless the model has "
        "`enable_input_require_grads`. A plain `nn.Module` "
        "wrapper has none of them: constructing the trainer raises AttributeError. Delegate them to the inner "
        "PreTrainedModel (`trainer_compat.patch(model, trainer=...)` does it at run time)."
    )
    fires = (rl(wrapper(), "dpo"), rl(wrapper(_CONFIG), "grpo"), rl(wrapper(), "reward", since_trl_1=True),
             Example(wrapper(_CONFIG), args={"gradient_checkpointing": True}, trainer="dpo",
                     versions=VersionRange(until="4.47")))  # TRL 0.12 (CI's 4.46 line)
    silent = (rl(wrapper(FULL), "dpo"), rl(wrapper(FULL), "grpo"), rl(PLAIN_LM, "dpo"),
              rl(wrapper(_CONFIG + _TAGS), "reward"))

    def check(self, ctx: Context) -> Iterator[Finding]:
        trl = _trl(ctx)
        if trl is None:
            return
        kind, cls = ctx.setup.trainer, ctx.subject.cls.__name__
        module, trainer = MODULES[kind], NAMES[kind]
        needed: list[tuple[str, str, str, str]] = []  # member, source pattern, what reads it, fix
        if trl >= VERIFIED_NEW:
            if kind in ("dpo", "grpo"):
                needed.append(("config", r"model\.config\.get_text_config\(\)\.pad_token_id = ",
                               "sets `model.config.get_text_config().pad_token_id`",
                               "`@property def config(self): return self.model.config`"))
                needed.append(("generation_config", r"model\.generation_config\.pad_token_id = ",
                               "sets `model.generation_config.pad_token_id`",
                               "`@property def generation_config(self): return self.model.generation_config`"))
            elif kind == "reward":
                needed.append(("config", r"if getattr\(model\.config, \"num_labels\", None\) != 1",
                               "reads `model.config.num_labels`",
                               "`@property def config(self): return self.model.config`"))
            needed.append(("add_model_tags", r"self\.model\.add_model_tags\(", "calls it at the end of __init__",
                           "`def add_model_tags(self, tags): self.model.add_model_tags(tags)`"))
        elif trl < OLD_UNTIL and kind == "dpo":
            needed.append(("config", r"self\.is_encoder_decoder = model\.config\.is_encoder_decoder",
                           "reads `model.config.is_encoder_decoder` and `model.config.model_type`",
                           "`@property def config(self): return self.model.config`"))
            if _input_grads_hook(ctx):
                needed.append(("get_input_embeddings", r"model\.get_input_embeddings\(\)\.register_forward_hook",
                               "hooks it when gradient_checkpointing is on and the model has no "
                               "enable_input_require_grads",
                               "`def get_input_embeddings(self): return self.model.get_input_embeddings()`"))
        for member, pattern, when, fix in needed:
            if ctx.subject.member(member).provenance is not Provenance.MISSING:
                continue
            site = library_site(module, pattern)
            yield self.finding(ctx, f"{cls} has no `{member}`; {trainer}() {when}{_at(site)} on TRL {trl}: "
                                    f"{trainer}() raises AttributeError", member=member, feature=kind,
                               call_site=site, fix=f"delegate it: {fix}", trl_version=str(trl))


def _input_grads_hook(ctx: Context) -> bool:
    """TRL 0.12 DPOTrainer() without peft_config and with gradient_checkpointing: `enable_input_require_grads()` if
    the model has it, else `model.get_input_embeddings().register_forward_hook(...)`."""
    if not getattr(ctx.setup.args, "gradient_checkpointing", False) or (ctx.setup.trainer_kwargs or {}).get(
            "peft_config") is not None:
        return False
    return ctx.subject.member("enable_input_require_grads").provenance is Provenance.MISSING


class RewardNumLabels(Rule):
    code = "TC1106"
    name = "reward-num-labels"
    severity = Severity.ERROR
    summary = "RewardTrainer (TRL 1.16) needs a sequence-classification head with `config.num_labels == 1`."
    explanation = (
        "A reward model scores each sequence with one scalar: RewardTrainer on TRL 1.16 reads "
        "`model.config.num_labels` of a model passed as an instance and raises ValueError \"The model has "
        "`num_labels=...`, but reward models require `num_labels=1`\" unless it is 1 (a classifier built with the "
        "default two labels, or a causal LM, whose config says 2). The check reads the model's config."
    )
    versions = TRL_LINES  # TRL 1.x (verified on 1.16); CI's 4.46 line has TRL 0.12
    fires = (rl(REWARD_MODEL.format(labels=2), "reward", since_trl_1=True),
             rl(PLAIN_LM, "reward", since_trl_1=True))
    silent = (rl(REWARD_MODEL.format(labels=1), "reward"), rl(PLAIN_LM, "dpo"))

    def check(self, ctx: Context) -> Iterator[Finding]:
        trl = _trl(ctx)
        if ctx.setup.trainer != "reward" or trl is None or trl < VERIFIED_NEW:
            return
        info = ctx.subject.member("config")
        if not info.present or info.value is None:
            return  # TC1105: no config at all
        labels = getattr(info.value, "num_labels", None)
        if labels == 1:
            return
        site = library_site(MODULES["reward"], r"if getattr\(model\.config, \"num_labels\", None\) != 1")
        yield self.finding(ctx, f"{ctx.subject.cls.__name__}'s config has num_labels={labels}; RewardTrainer() on "
                                f"TRL {trl} requires 1{_at(site)}: it raises ValueError \"reward models require "
                                "`num_labels=1`\"", member="config", feature="reward", call_site=site,
                           trl_version=str(trl),
                           fix="build the reward head with one output: `num_labels=1` (e.g. "
                               "AutoModelForSequenceClassification.from_pretrained(..., num_labels=1)), and set "
                               "config.pad_token_id")


class DpoReferenceReloaded(Rule):
    code = "TC1107"
    name = "dpo-reference-reloaded"
    severity = Severity.ERROR
    summary = "DPOTrainer (TRL 1.16) without `ref_model` reloads the reference from `config._name_or_path`."
    explanation = (
        "Without a `ref_model` (and without PEFT or `precompute_ref_log_probs=True`), DPOTrainer on TRL 1.16 builds "
        "the reference with `create_model_from_path(get_config_model_id(self.model.config))`: it loads the "
        "checkpoint the config names with AutoModelForCausalLM, it does not copy the model (TRL 0.12 deep-copied "
        "it). A model built in memory (`_name_or_path` empty) makes DPOTrainer() raise; a wrapper whose `config` is "
        "its inner model's gets that inner model as the reference, without the wrapper's forward or extra "
        "modules, so the DPO loss compares two different models. Pass `ref_model=` (a deepcopy of the wrapper, or "
        "`trl.create_reference_model(model)`), or set `precompute_ref_log_probs=True`."
    )
    versions = TRL_LINES  # TRL 1.x (verified on 1.16); CI's 4.46 line has TRL 0.12
    fires = (rl(wrapper(_CONFIG + _GENERATION + _TAGS), "dpo", since_trl_1=True),)
    silent = (rl(wrapper(FULL), "dpo", precompute_ref_log_probs=True),
              rl(wrapper(_CONFIG + _GENERATION + _TAGS), "reward"))

    def check(self, ctx: Context) -> Iterator[Finding]:
        trl = _trl(ctx)
        if ctx.setup.trainer != "dpo" or trl is None or trl < VERIFIED_NEW or ctx.subject.is_peft:
            return
        if getattr(ctx.setup.args, "precompute_ref_log_probs", False):
            return
        if (ctx.setup.trainer_kwargs or {}).get("ref_model") is not None:
            return
        info = ctx.subject.member("config")
        if not info.present or info.value is None:
            return  # TC1105
        path = getattr(info.value, "_name_or_path", "") or ""
        site = library_site(MODULES["dpo"], r"self\.ref_model = create_model_from_path\(ref_model_path")
        name = ctx.subject.cls.__name__
        if not path:
            what = (f"{name}'s config names no checkpoint (`_name_or_path` is empty: a model built in memory), so "
                    "DPOTrainer() raises when it loads the reference")
            severity = Severity.ERROR
        elif not ctx.subject.is_pretrained:
            what = (f"{name} is not a PreTrainedModel: the reference is the inner model reloaded from {path!r}, "
                    "without the wrapper's forward and modules: the DPO loss compares two different models")
            severity = Severity.WARNING
        else:
            return
        yield self.finding(ctx, f"DPOTrainer on TRL {trl} without ref_model builds the reference with "
                                f"create_model_from_path(config._name_or_path){_at(site)}: {what}",
                           severity=severity, member="config", feature="dpo", call_site=site, trl_version=str(trl),
                           fix="pass ref_model=copy.deepcopy(model) (or trl.create_reference_model(model)), or set "
                               "precompute_ref_log_probs=True")
