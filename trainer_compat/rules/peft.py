"""PEFT (`--peft`, ``check(..., peft=LoraConfig(...))``): what get_peft_model and PeftModel need of the base model.

The adapter config reaches the rules in the setup (``ctx.setup.peft``: ``check(..., peft=)``, ``--peft`` or the
``peft`` key of ``[tool.trainer-compat]``).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from trainer_compat.example_models import WRAPPER_TEMPLATE
from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Location, Severity
from trainer_compat.protocol.sites import library_site
from trainer_compat.rules.base import Context, Example, Rule
from trainer_compat.subject import Provenance

GENERATIVE = ("CAUSAL_LM", "SEQ_2_SEQ_LM")
# What PeftModelForCausalLM.forward passes to the base model (LoRA and the other non-prompt adapters).
CAUSAL_LM_KWARGS = ("input_ids", "attention_mask", "inputs_embeds", "labels", "output_attentions",
                    "output_hidden_states", "return_dict")


def _task(config: Mapping[str, Any]) -> str:
    return str(getattr(config.get("task_type"), "value", config.get("task_type")) or "")


peft_site = library_site  # file:line in the installed peft


_WRAPPER = WRAPPER_TEMPLATE
_CONFIG = "\n    @property\n    def config(self):\n        return self.model.config\n"
_PREPARE = ("\n    def prepare_inputs_for_generation(self, *args, **kwargs):\n"
            "        return self.model.prepare_inputs_for_generation(*args, **kwargs)\n")


def wrapper(extra: str = "", kwargs: bool = False) -> str:
    return _WRAPPER.format(extra=extra, more=", **kwargs" if kwargs else "",
                           pass_more=", **kwargs" if kwargs else "")


_LORA = {"r": 2, "target_modules": ["c_attn"]}


_PROMPT = {"task_type": "CAUSAL_LM", "num_virtual_tokens": 4, "peft_type": "PROMPT_TUNING"}
_DEVICE = "\n    @property\n    def device(self):\n        return self.model.device\n"


def _embeds_wrapper(extra: str) -> str:
    """A wrapper that also takes inputs_embeds (a prompt-learning adapter passes no input_ids)."""
    return wrapper(extra, kwargs=True).replace("def forward(self, input_ids,", "def forward(self, input_ids=None,")


def _prompt_learning(config: Mapping[str, Any]) -> bool:
    """Prompt tuning, prefix tuning, P-tuning: the adapters with virtual tokens."""
    return bool(config.get("num_virtual_tokens"))


class PeftTaskNeedsGeneration(Rule):
    code = "TC1001"
    name = "peft-task-needs-generation"
    severity = Severity.ERROR
    summary = ("get_peft_model reads members of the base model in __init__: `prepare_inputs_for_generation` "
               "(CAUSAL_LM / SEQ_2_SEQ_LM), `device` first (prompt learning).")
    explanation = (
        "`get_peft_model(model, LoraConfig(task_type=\"CAUSAL_LM\"))` builds a PeftModelForCausalLM (SEQ_2_SEQ_LM: "
        "PeftModelForSeq2SeqLM), whose __init__ reads `base_model.prepare_inputs_for_generation` unconditionally. "
        "A prompt-learning adapter (prompt / prefix / P-tuning, `num_virtual_tokens`) reads `device` even before "
        "that, to place its prompt encoder (`prompt_encoder.to(self.device)`, which PeftModel forwards to the base "
        "model). A plain `nn.Module` wrapper has neither, so get_peft_model raises AttributeError before training "
        "starts, on the first of them it reads (the finding that says \"first\"). Delegate them to the inner model "
        "(`trainer_compat.patch(model)` does), or leave `task_type` unset (LoRA: a plain PeftModel)."
    )
    fires = (Example(wrapper(_CONFIG, kwargs=True), peft={**_LORA, "task_type": "CAUSAL_LM"}),
             Example(_embeds_wrapper(_CONFIG + _PREPARE), peft=_PROMPT))
    silent = (Example(wrapper(_CONFIG + _PREPARE, kwargs=True), peft={**_LORA, "task_type": "CAUSAL_LM"}),
              Example(wrapper(_CONFIG), peft=_LORA),
              Example(_embeds_wrapper(_CONFIG + _PREPARE + _DEVICE), peft=_PROMPT))

    def check(self, ctx: Context) -> Iterator[Finding]:
        config = ctx.setup.peft
        if not config:
            return
        task = _task(config)
        wanted = _prompt_members(config) if _prompt_learning(config) else []
        wanted += _generation_members(task) if task in GENERATIVE else []
        missing = [(m, site) for m, site in wanted if ctx.subject.member(m).provenance is Provenance.MISSING]
        for i, (member, site) in enumerate(missing):
            prompt = member in ("config", "device")
            kind = f"a prompt-learning {config.get('peft_type') or 'adapter'}" if prompt else f"task_type={task}"
            num_layers = member == "config" and site is not None and site.file.endswith("other.py")
            error = "ValueError 'Please specify `num_layers` in `peft_config`'" if num_layers else "AttributeError"
            first = "; it is the first member get_peft_model fails on" if i == 0 and len(missing) > 1 else ""
            yield self.finding(
                ctx, f"{ctx.subject.cls.__name__} has no `{member}`; with {kind}, get_peft_model builds a "
                     f"PeftModel that reads it in __init__{' (' + str(site) + ')' if site else ''}: get_peft_model "
                     f"raises {error}{first}",
                member=member, feature="peft", call_site=site,
                fix=(f"delegate it: `@property def {member}(self): return self.model.{member}`" if prompt
                     else f"delegate it: `def {member}(self, *args, **kwargs): return self.model.{member}(*args, "
                          "**kwargs)`, or leave task_type unset") + " (trainer_compat.patch(model) adds it)")


def _prompt_members(config: Mapping[str, Any]) -> list[tuple[str, Location | None]]:
    """What PeftModel's prompt-learning set-up reads of the base model, in order: `config` (to size the virtual
    tokens; before peft 0.14 get_peft_model falls back to {"model_type": "custom"} and raises ValueError unless
    num_layers / token_dim / num_attention_heads are given), then `device` (to place the prompt encoder)."""
    found = []
    site = peft_site("peft.peft_model", r"_prepare_prompt_learning_config\(peft_config, self\.config\)")
    sized = all(config.get(k) for k in ("num_layers", "token_dim", "num_attention_heads"))
    if site is not None or not sized:
        found.append(("config", site or peft_site("peft.utils.other", r"Please specify `num_layers` in `peft_config`")))
    found.append(("device", peft_site("peft.peft_model", r"prompt_encoder = prompt_encoder\.to\(self\.device\)")))
    return found


def _generation_members(task: str) -> list[tuple[str, Location | None]]:
    """What the installed peft's task model reads of the base model in __init__ (the seq2seq one also read
    `_prepare_encoder_decoder_kwargs_for_generation` up to peft 0.1x)."""
    found = [("prepare_inputs_for_generation",
              peft_site("peft.peft_model", r"base_model_prepare_inputs_for_generation = self\.base_model\."))]
    if task == "SEQ_2_SEQ_LM":
        site = peft_site("peft.peft_model", r"^\s+self\.base_model\._prepare_encoder_decoder_kwargs_for_generation$")
        if site is not None:
            found.append(("_prepare_encoder_decoder_kwargs_for_generation", site))
    return found


class PeftTaskReadsConfig(Rule):
    code = "TC1005"
    name = "peft-task-reads-config"
    severity = Severity.ERROR
    summary = "A CAUSAL_LM adapter reads `config.model_type` of the base model at every step."
    explanation = (
        "PeftModelForCausalLM.forward starts with `if self.base_model.config.model_type == \"mpt\"` (LoRA and the "
        "other non-prompt adapters), and PeftModel reads `config` in several other places. A wrapper without "
        "`config` builds, then raises AttributeError at the first training step. Expose the inner model's "
        "config, or leave `task_type` unset (a plain PeftModel never reads it in forward)."
    )
    fires = (Example(wrapper(_PREPARE, kwargs=True), peft={**_LORA, "task_type": "CAUSAL_LM"}),)
    silent = (Example(wrapper(_CONFIG + _PREPARE, kwargs=True), peft={**_LORA, "task_type": "CAUSAL_LM"}),
              Example(wrapper(kwargs=True), peft=_LORA))

    def check(self, ctx: Context) -> Iterator[Finding]:
        config = ctx.setup.peft
        if not config or _task(config) != "CAUSAL_LM" or config.get("num_virtual_tokens"):
            return
        if ctx.subject.member("config").provenance is not Provenance.MISSING:
            return
        site = peft_site("peft.peft_model", r"if self\.base_model\.config\.model_type == \"mpt\":")
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__} has no `config`; PeftModelForCausalLM.forward reads "
                 f"`base_model.config.model_type`{' (' + str(site) + ')' if site else ''} at every call: the "
                 "first training step raises AttributeError",
            member="config", feature="peft", call_site=site,
            fix="expose the inner model's config: `@property def config(self): return self.model.config`, "
                "or leave task_type unset")


def _forward_rejects(ctx: Context, names: tuple[str, ...]) -> list[str]:
    forward = getattr(ctx.subject.cls, "forward", None)
    if forward is None:
        return []
    try:
        params = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return []
    return [n for n in names if n not in params]


class PeftForwardKwargs(Rule):
    code = "TC1002"
    name = "peft-forward-kwargs"
    severity = Severity.ERROR
    summary = "A CAUSAL_LM adapter calls the base forward with labels=, inputs_embeds=, return_dict=, ..."
    explanation = (
        "PeftModelForCausalLM.forward always calls the base model as `base_model(input_ids=..., attention_mask=..., "
        "inputs_embeds=..., labels=..., output_attentions=..., output_hidden_states=..., return_dict=..., "
        "**kwargs)`, whatever the batch holds. A wrapper whose forward names only some of them (and takes no "
        "**kwargs) raises TypeError at the first training step."
    )
    fires = (Example(wrapper(_CONFIG + _PREPARE), peft={**_LORA, "task_type": "CAUSAL_LM"}),)
    silent = (Example(wrapper(_CONFIG + _PREPARE, kwargs=True), peft={**_LORA, "task_type": "CAUSAL_LM"}),
              Example(wrapper(_CONFIG), peft=_LORA))

    def check(self, ctx: Context) -> Iterator[Finding]:
        config = ctx.setup.peft
        if not config or _task(config) != "CAUSAL_LM":
            return
        rejected = _forward_rejects(ctx, CAUSAL_LM_KWARGS)
        if not rejected:
            return
        site = peft_site("peft.peft_model", r"inputs_embeds=inputs_embeds,$")
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__}.forward takes no {', '.join(rejected)}; PeftModelForCausalLM passes "
                 f"them on every call{' (' + str(site) + ')' if site else ''}: the first training step raises "
                 "TypeError", member="forward", feature="peft", call_site=site,
            fix=f"accept them: add `{'=None, '.join(rejected)}=None` (or **kwargs) to forward and pass them on")


def _model_type(ctx: Context) -> str | None:
    info = ctx.subject.member("config")
    if not info.present or info.provenance is Provenance.UNKNOWN:
        return None if not info.present else "?"
    return getattr(info.value, "model_type", None) or None


class PeftTargetModulesUnknown(Rule):
    code = "TC1003"
    name = "peft-target-modules-unknown"
    severity = Severity.ERROR
    summary = "`target_modules=None` needs a `config.model_type` that PEFT knows."
    explanation = (
        "With `target_modules` unset, PEFT picks the layers from a table keyed by `model.config.model_type`; a "
        "model without `config` counts as model_type \"custom\". A wrapper that does not expose the inner "
        "model's config (or an unknown model type) makes get_peft_model raise ValueError \"Please specify "
        "`target_modules`\"."
    )
    fires = (Example(wrapper(kwargs=True), peft={"r": 2}),)
    silent = (Example(wrapper(_CONFIG, kwargs=True), peft={"r": 2}), Example(wrapper(kwargs=True), peft=_LORA))

    def check(self, ctx: Context) -> Iterator[Finding]:
        config = ctx.setup.peft
        if not config or config.get("target_modules") or config.get("target_parameters") or _prompt_learning(config):
            return  # prompt learning targets no layers
        model_type = _model_type(ctx)
        if model_type == "?" or not importlib.util.find_spec("peft"):
            return
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as known

        if model_type in known:
            return
        site = peft_site("peft.tuners.lora.model", r"Please specify `target_modules`")
        what = f"config.model_type {model_type!r}" if model_type else "no `config` (PEFT reads model_type \"custom\")"
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__} has {what} and the adapter sets no target_modules: PEFT has no "
                 f"default layers for it{' (' + str(site) + ')' if site else ''}: get_peft_model raises ValueError",
            member="config", feature="peft", call_site=site,
            fix="name the layers (`target_modules=[\"c_attn\"]`), or expose the inner model's config: "
                "`@property def config(self): return self.model.config`")


def _outermost_adapters(model: Any) -> list[tuple[str, Any]]:
    """``(path, module)`` of each PeftModel / PEFT tuner inside ``model`` and not inside another one."""
    peft = sys.modules.get("peft")
    if peft is None or not hasattr(model, "named_modules"):
        return []
    from peft.tuners.tuners_utils import BaseTuner

    kinds = tuple(k for k in (getattr(peft, "PeftModel", None), getattr(peft, "PeftMixedModel", None), BaseTuner)
                  if isinstance(k, type))
    if isinstance(model, kinds):
        return []  # PEFT at the top level: Trainer sees it
    found: list[tuple[str, Any]] = []
    for path, module in model.named_modules():
        if isinstance(module, kinds) and not any(path.startswith(p + ".") for p, _ in found):
            found.append((path, module))
    return found


def _numel(params: Iterator[Any]) -> int:
    return sum(p.numel() for p in params)


_NESTED = """
import peft
import torch.nn as nn
from trainer_compat.testing import tiny_causal_lm

class Wrapper(nn.Module):
    def __init__(self, nested):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)
        if nested:
            self.model = peft.get_peft_model(self.model, peft.LoraConfig(r=2, target_modules=["c_attn"]))

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)

{model}
"""
_NESTED_MODEL = "def Model():\n    return Wrapper(nested=True)\n"
_TOP_LEVEL_MODEL = ("def Model():\n    return peft.get_peft_model(Wrapper(nested=False), "
                    "peft.LoraConfig(r=2, target_modules=[\"model.transformer.h.0.attn.c_attn\"]))\n")


class PeftNestedInWrapper(Rule):
    code = "TC1004"
    name = "peft-nested-in-wrapper"
    severity = Severity.WARNING
    summary = "A PeftModel inside a wrapper is invisible to Trainer: checkpoints hold the whole model, no adapter."
    explanation = (
        "Trainer recognises PEFT by `isinstance(model, PeftModel)` on the model it was given, top level only. "
        "With the adapter inside a plain `nn.Module` wrapper, `Trainer._save` falls back to the wrapper's raw "
        "state dict: every checkpoint holds the frozen base weights as well (wrapper-prefixed keys, no "
        "`adapter_config.json`), so `PeftModel.from_pretrained(base, checkpoint)` cannot load it, and "
        "load_best_model_at_end / resume restore the whole model. Apply `get_peft_model` to the wrapper (the "
        "PeftModel at the top level, `target_modules` naming the inner layers), or save the adapter yourself."
    )
    fires = (Example(_NESTED.format(model=_NESTED_MODEL)),)
    silent = (Example(_NESTED.format(model=_TOP_LEVEL_MODEL)),
              Example(_NESTED.format(model=_NESTED_MODEL), args={"save_strategy": "no"}))

    def check(self, ctx: Context) -> Iterator[Finding]:
        if ctx.subject.instance is None or not (ctx.has(Feature.SAVE) or ctx.has(Feature.LOAD_BEST)):
            return
        model = ctx.subject.instance
        for path, adapter in _outermost_adapters(model):
            trainable = _numel(p for p in adapter.parameters() if p.requires_grad)
            total = _numel(model.parameters())
            yield self.finding(
                ctx, f"{ctx.subject.cls.__name__}.{path} is a {type(adapter).__name__} inside the wrapper; Trainer "
                     f"checks isinstance(model, PeftModel) at the top level only, so each checkpoint saves the "
                     f"wrapper's whole state dict ({total:,} parameters, {trainable:,} of them trainable) with no "
                     "adapter_config.json: PeftModel.from_pretrained cannot load it",
                member=path, feature=Feature.SAVE,
                fix=f"apply get_peft_model to the wrapper and pass that PeftModel to Trainer (target_modules naming "
                    f"the inner layers, e.g. \"{path}.…\" paths), or save the adapter in a callback: "
                    f"`model.{path}.save_pretrained(output_dir)`")
