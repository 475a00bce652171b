"""TRL (`--trainer sft`): what TRL's SFTTrainer needs of the model beyond Trainer's protocol, per TRL release.

SFTTrainer subclasses Trainer, so Trainer's protocol still applies (``requirements_for`` maps "sft" to it), with
``SFTConfig``'s defaults (``features.build_setup`` builds the real one: ``gradient_checkpointing=True`` since TRL
0.22, so the checkpointing rules apply by default). Beyond that, from the TRL sources (git tags, and the 1.12-1.16
wheels) and real SFTTrainer runs (tests/test_trl.py):

* TRL 0.22: ``compute_loss`` sets ``inputs["use_cache"] = False`` and calls the model's forward with it.
* TRL 0.27: ``self.model.add_model_tags(...)`` at the end of ``__init__``, no longer behind ``hasattr``.
* TRL 1.4: ``loss_type="chunked_nll"`` (the default from 1.7 unless ``use_liger_kernel``) patches ``model.forward``
  in ``__init__`` (reading ``config.get_text_config()`` and ``get_output_embeddings()`` there): a step with labels
  runs ``model.base_model`` (a backbone returning ``last_hidden_state``) and the head's weight, not the forward.
* TRL 1.8: ``model.config.get_text_config()`` in ``__init__``, unguarded.
* TRL 1.13: without a ``data_collator`` (the default) the pad token is mirrored into
  ``model.config.get_text_config()`` and ``model.generation_config``.
* TRL 1.15: ``add_fused_lm_head`` always replaces ``model.forward`` the same way (``base_model`` and
  ``get_output_embeddings()`` looked up at each step); the model's own forward only runs for label smoothing,
  ``compute_loss_func`` and generation.

TRL 0.12-0.21 (the releases that support transformers 4.46) need none of this: a plain wrapper trains there.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

from packaging.version import Version

from trainer_compat import analysis
from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Location, Severity
from trainer_compat.protocol.sites import library_site
from trainer_compat.protocol.trl import (
    FUSED_HEAD_TRL,
    GENERATION_CONFIG_TRL,
    TAGS_TRL,
    TEXT_CONFIG_TRL,
    TRL_LINES,
    USE_CACHE_TRL,
)
from trainer_compat.rules.base import Context, Example, Rule
from trainer_compat.subject import Provenance
from trainer_compat.trl_rl_shared import backbone_problem, head_problem


def _patch_site() -> Location | None:
    return (trl_site("trl.trainer.utils", r"model\.forward = types\.MethodType\(_fused_forward")
            or trl_site("trl.trainer.sft_trainer", r"model\.forward = types\.MethodType\(_chunked_ce_forward"))


trl_site = library_site  # file:line in the installed trl


def _at(site: Location | None) -> str:
    return f" ({site})" if site else ""


_WRAPPER = """
import torch.nn as nn
from trainer_compat.testing import tiny_causal_lm

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
{extra}
    def forward(self, input_ids, attention_mask=None, labels=None{more}):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels{pass_more})
        {aux}return out
"""
_CONFIG = "\n    @property\n    def config(self):\n        return self.model.config\n"
_GENERATION = "\n    @property\n    def generation_config(self):\n        return self.model.generation_config\n"
_TAGS = "\n    def add_model_tags(self, tags):\n        self.model.add_model_tags(tags)\n"
_CHECKPOINTING = ("\n    def gradient_checkpointing_enable(self, **kwargs):\n"
                  "        self.model.gradient_checkpointing_enable(**kwargs)\n"
                  "\n    def gradient_checkpointing_disable(self):\n"
                  "        self.model.gradient_checkpointing_disable()\n")
_BACKBONE = "\n    @property\n    def base_model(self):\n        return self.model.base_model\n"
_WHOLE_LM = "\n    @property\n    def base_model(self):\n        return self.model\n"
_HEAD = "\n    def get_output_embeddings(self):\n        return self.model.get_output_embeddings()\n"
_INIT = _CONFIG + _GENERATION + _TAGS + _CHECKPOINTING
_FULL = _INIT + _BACKBONE + _HEAD
_AUX = "out.loss = out.loss + 1.0  # an auxiliary term the wrapper adds\n        "
PLAIN_LM = ("from trainer_compat.testing import tiny_causal_lm\n\n\ndef Model():\n"
            "    return tiny_causal_lm(tie=False, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)\n")


def wrapper(extra: str = "", kwargs: bool = False, aux: bool = False) -> str:
    return _WRAPPER.format(extra=extra, more=", **kwargs" if kwargs else "",
                           pass_more=", **kwargs" if kwargs else "", aux=_AUX if aux else "")


def sft(code: str, **args: object) -> Example:
    return Example(code, args=dict(args), trainer="sft", versions=TRL_LINES)


class SftInitMembers(Rule):
    code = "TC1101"
    name = "sft-init-members"
    severity = Severity.ERROR
    versions = TRL_LINES
    summary = "SFTTrainer() reads `config.get_text_config()`, `generation_config` and `add_model_tags` unguarded."
    explanation = (
        "Beyond Trainer, TRL's SFTTrainer.__init__ calls `model.config.get_text_config()` (TRL >= 1.8), writes the "
        "pad token into it and into `model.generation_config` when no `data_collator` is passed (TRL >= 1.13), and "
        "ends with `model.add_model_tags([\"trl\", \"sft\"])` (TRL >= 0.27; behind `hasattr` before). A plain "
        "`nn.Module` wrapper has none of them: constructing the trainer raises AttributeError. Delegate them to "
        "the inner PreTrainedModel. TRL 0.12-0.26 (the 4.46 line) read none of them unguarded."
    )
    fires = (sft(wrapper(_CHECKPOINTING, kwargs=True)), sft(wrapper(_CONFIG + _CHECKPOINTING, kwargs=True)))
    silent = (sft(wrapper(_FULL, kwargs=True)), sft(PLAIN_LM))

    def check(self, ctx: Context) -> Iterator[Finding]:
        cls = ctx.subject.cls.__name__
        trl = analysis.trl_since(ctx, TEXT_CONFIG_TRL) or analysis.sft_head_patched(ctx)
        if trl is not None:
            yield from self._config(ctx, trl)
        needed = [("generation_config", analysis.trl_since(ctx, GENERATION_CONFIG_TRL),
                   r"model\.generation_config\.pad_token_id",
                   "SFTTrainer() sets its pad_token_id when no data_collator is passed",
                   "`@property def generation_config(self): return self.model.generation_config`"),
                  ("add_model_tags", analysis.trl_since(ctx, TAGS_TRL), r"self\.model\.add_model_tags\(",
                   "SFTTrainer() calls it at the end of __init__",
                   "`def add_model_tags(self, tags): self.model.add_model_tags(tags)`")]
        for member, since, pattern, when, fix in needed:
            if since is None or ctx.subject.member(member).provenance is not Provenance.MISSING:
                continue
            site = trl_site("trl.trainer.sft_trainer", pattern)
            yield self.finding(ctx, f"{cls} has no `{member}`; {when}{_at(site)} on TRL {since}: SFTTrainer() "
                                    "raises AttributeError", member=member, feature="sft", call_site=site,
                               fix=f"delegate it: {fix}", trl_version=str(since))

    def _config(self, ctx: Context, trl: Version) -> Iterator[Finding]:
        info = ctx.subject.member("config")
        if info.provenance is Provenance.UNKNOWN:
            return
        site = trl_site("trl.trainer.sft_trainer", r"^\s*text_config = model\.config\.get_text_config\(\)")
        if not info.present:
            what = "has no `config`"
        elif info.value is not None and not callable(getattr(info.value, "get_text_config", None)):
            what = f"has a `config` ({type(info.value).__name__}) without `get_text_config()`"
        else:
            return
        yield self.finding(ctx, f"{ctx.subject.cls.__name__} {what}; SFTTrainer() calls `model.config."
                                f"get_text_config()`{_at(site)} on TRL {trl}: it raises AttributeError",
                           member="config", feature="sft", call_site=site, trl_version=str(trl),
                           fix="expose the inner model's PretrainedConfig: `@property def config(self): "
                               "return self.model.config`")


class SftFusedLmHead(Rule):
    code = "TC1102"
    name = "sft-fused-lm-head"
    severity = Severity.ERROR
    versions = TRL_LINES
    summary = "SFTTrainer (TRL >= 1.15, or 1.7+ chunked_nll) trains through `base_model` + `get_output_embeddings()`."
    explanation = (
        "From TRL 1.15 (and with `loss_type=\"chunked_nll\"`, the default on TRL 1.7-1.14), SFTTrainer patches "
        "`model.forward` with its own LM head: every training step runs `model.base_model(...)` (`model.model` for "
        "a vision-language model before transformers 5), takes its `last_hidden_state`, and projects it with "
        "`model.get_output_embeddings().weight`, in chunks. A wrapper without them raises AttributeError (at the "
        "first step; in SFTTrainer() for the head on TRL < 1.15); a `base_model` that is the whole LM (its output "
        "has `logits`, not `last_hidden_state`) fails the same way. Expose the inner backbone and its head."
    )
    fires = (sft(wrapper(_INIT, kwargs=True)), sft(wrapper(_INIT + _WHOLE_LM + _HEAD, kwargs=True)),
             sft(wrapper(_INIT + _BACKBONE, kwargs=True)))
    silent = (sft(wrapper(_FULL, kwargs=True)), sft(PLAIN_LM))

    def check(self, ctx: Context) -> Iterator[Finding]:
        trl = analysis.sft_head_patched(ctx)
        if trl is None:
            return
        if ctx.subject.is_peft:
            ctx.skip(self.code, "a PeftModel: TRL patches its base model, which this check does not follow")
            return
        cls, attr = ctx.subject.cls.__name__, analysis.backbone_attr(ctx)
        backbone_site = (trl_site("trl.trainer.utils", r"getattr\(self, backbone_attr\)\(")
                         or trl_site("trl.trainer.sft_trainer", r"backbone = self\.base_model"))
        problem = self._backbone(ctx, attr)
        if problem:
            yield self.finding(ctx, f"{cls} {problem}; the LM head TRL {trl} patches in calls `self.{attr}(...)"
                                    f".last_hidden_state`{_at(backbone_site)} at every training step: the first step "
                                    "raises AttributeError", member=attr, feature="sft", call_site=backbone_site,
                               trl_version=str(trl),
                               fix=f"expose the backbone: `@property def {attr}(self): return self.model.base_model`")
        problem = self._head(ctx)
        if problem:
            site = (trl_site("trl.trainer.utils", r"lm_head = self\.get_output_embeddings\(\)")
                    or trl_site("trl.trainer.sft_trainer", r"lm_head = model\.get_output_embeddings\(\)"))
            yield self.finding(ctx, f"{cls} {problem}; the LM head TRL {trl} patches in projects "
                                    f"with `get_output_embeddings().weight`{_at(site)}: SFTTrainer (or its first "
                                    "step) raises AttributeError", member="get_output_embeddings", feature="sft",
                               call_site=site, trl_version=str(trl),
                               fix="delegate it: `def get_output_embeddings(self): return "
                                   "self.model.get_output_embeddings()`")

    _backbone = staticmethod(backbone_problem)  # shared with TC1108 (trl_rl_shared)
    _head = staticmethod(head_problem)


def _own_forward(ctx: Context) -> type | None:
    """The class that defines the forward Trainer would call, when it is the user's own code."""
    owner = next((k for k in ctx.subject.cls.__mro__ if "forward" in vars(k)), None)
    if owner is None or owner.__module__.split(".")[0] in ("transformers", "peft", "torch"):
        return None
    return owner


class SftForwardBypassed(Rule):
    code = "TC1103"
    name = "sft-forward-bypassed"
    severity = Severity.WARNING
    versions = TRL_LINES
    summary = "SFTTrainer (TRL >= 1.15, or 1.7+ chunked_nll) never runs the wrapper's own forward in training."
    explanation = (
        "From TRL 1.15 (and with `loss_type=\"chunked_nll\"`, the default on TRL 1.7-1.14), SFTTrainer replaces "
        "`model.forward` and computes the loss, entropy and token accuracy "
        "itself from `base_model` + `get_output_embeddings()`. Whatever a wrapper's forward adds (an auxiliary loss, "
        "extra inputs or modalities, input rewriting, a custom head or loss) silently does not happen in "
        "training. The original forward runs only for generation, and for label smoothing or a "
        "`compute_loss_func`, which take its logits, never its loss. Train with `Trainer` (or subclass SFTTrainer "
        "and override `compute_loss`) when the forward matters."
    )
    fires = (sft(wrapper(_FULL, kwargs=True, aux=True)),)
    silent = (sft(PLAIN_LM), Example(wrapper(_FULL, kwargs=True, aux=True), versions=TRL_LINES))

    def check(self, ctx: Context) -> Iterator[Finding]:
        trl = analysis.sft_head_patched(ctx)
        owner = _own_forward(ctx) if trl is not None and not ctx.subject.is_peft else None
        if owner is None:
            return
        site = _patch_site()
        yield self.finding(ctx, f"{owner.__name__}.forward never runs in SFT training: TRL {trl} replaces "
                                f"model.forward{_at(site)} and computes the loss from `base_model` + "
                                "`get_output_embeddings()`; anything the forward adds is silently skipped",
                           member="forward", feature="sft", call_site=site, trl_version=str(trl),
                           fix="if the forward does more than run the inner LM, train with Trainer, or subclass "
                               "SFTTrainer and override compute_loss")


def _rejects(ctx: Context, name: str) -> bool:
    forward = getattr(ctx.subject.cls, "forward", None)
    if forward is None:
        return False
    try:
        params = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return False
    return name not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values())


class SftForwardUseCache(Rule):
    code = "TC1104"
    name = "sft-forward-use-cache"
    severity = Severity.ERROR
    versions = TRL_LINES
    summary = "SFTTrainer calls the model's forward with `use_cache=False`: a forward without it raises TypeError."
    explanation = (
        "SFTTrainer.compute_loss sets `inputs[\"use_cache\"] = False` before calling the model (TRL >= 0.22). On "
        "TRL 0.22-1.14 every training step calls the model's own forward that way (unless `chunked_nll`, the "
        "default from 1.7, patched it); where TRL's own LM head replaced the forward (TC1102), the original forward "
        "gets it only when the loss needs full logits: "
        "`label_smoothing_factor > 0` (or a `compute_loss_func`, which this check cannot see). A forward that "
        "takes neither `use_cache` nor **kwargs then raises TypeError at the first step."
    )
    fires = (sft(wrapper(_FULL), label_smoothing_factor=0.1),)
    silent = (sft(wrapper(_FULL, kwargs=True), label_smoothing_factor=0.1), sft(PLAIN_LM, label_smoothing_factor=0.1))

    def check(self, ctx: Context) -> Iterator[Finding]:
        trl = analysis.trl_since(ctx, USE_CACHE_TRL)
        if trl is None or ctx.subject.is_peft or not _rejects(ctx, "use_cache"):
            return
        if analysis.sft_head_patched(ctx):
            loss_type = getattr(ctx.setup.args, "loss_type", "nll")
            smoothing = ctx.has(Feature.LABEL_SMOOTHING) and (trl < FUSED_HEAD_TRL or loss_type == "nll")
            if not smoothing:
                return
            why = "with label_smoothing_factor > 0 the loss comes from the model's own forward, called"
        else:
            why = "every training step calls the model's own forward"
        site = trl_site("trl.trainer.sft_trainer", r'inputs\["use_cache"\] = False')
        yield self.finding(ctx, f"{ctx.subject.cls.__name__}.forward takes neither `use_cache` nor **kwargs; on TRL "
                                f"{trl} {why} with use_cache=False{_at(site)}: the first step raises TypeError",
                           member="forward", feature="sft", call_site=site, trl_version=str(trl),
                           fix="accept it: add `use_cache=None` (or **kwargs) to forward and pass it on")
