"""A PeftModel given to Trainer: what its checkpoints hold (only the adapter, and modules_to_save)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Severity
from trainer_compat.protocol.sites import library_site
from trainer_compat.rules.base import Context, Example, Rule

_PEFT_LM = """
import peft
from trainer_compat.testing import tiny_causal_lm

def Model():
    model = peft.get_peft_model(tiny_causal_lm(tie=False), peft.LoraConfig({config}))
{after}    return model
"""
_LORA = 'r=2, target_modules=["c_attn"], task_type="CAUSAL_LM"'
UNFROZEN_HEAD = _PEFT_LM.format(config=_LORA, after="    model.base_model.model.lm_head.weight.requires_grad_(True)\n")
HEAD_IN_MODULES_TO_SAVE = _PEFT_LM.format(config=_LORA + ', modules_to_save=["lm_head"]', after="")
PLAIN_LORA = _PEFT_LM.format(config=_LORA, after="")


def _storage(tensor: Any) -> tuple[str, int, int, tuple[int, ...]] | None:
    try:
        return (str(tensor.device), tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
    except (AttributeError, RuntimeError):
        return None


def _in_an_adapter(name: str, adapters: set[str]) -> bool:
    """Every PEFT-made parameter has its adapter's name as a path segment (`lora_A.default.weight`)."""
    return any(part in adapters for part in name.split(".")[:-1])


def unsaved_trainable(model: Any) -> tuple[list[str], list[str]]:
    """Trainable parameters outside every adapter that PeftModel.save_pretrained leaves out: (lost, uncertain).

    Uncertain: input/output embeddings of a model loaded from the Hub, which PEFT saves only when it finds the
    vocabulary resized against the Hub's config (a look-up this check does not make).
    """
    from peft.utils import get_peft_model_state_dict

    adapters = set(getattr(model, "peft_config", {}) or {})
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad and not _in_an_adapter(n, adapters)]
    if not trainable or not adapters:
        return [], []
    saved: set[Any] = set()
    hub_embeddings: set[Any] = set()
    for name, config in model.peft_config.items():
        model_id = getattr(config, "base_model_name_or_path", None)
        hub = bool(model_id) and not os.path.exists(os.path.join(str(model_id), "config.json"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = get_peft_model_state_dict(model, adapter_name=name, save_embedding_layers=False if hub else "auto")
        saved |= {_storage(t) for t in state.values()}
        if hub:
            for get in ("get_input_embeddings", "get_output_embeddings"):
                layer = getattr(model, get, lambda: None)()
                hub_embeddings |= {_storage(p) for p in (layer.parameters() if layer is not None else ())}
    lost = [n for n, p in trainable if _storage(p) not in saved]
    uncertain = [n for n in lost if _storage(dict(model.named_parameters())[n]) in hub_embeddings]
    return [n for n in lost if n not in uncertain], uncertain


def _modules(names: list[str]) -> list[str]:
    """Parameter names as the module paths a user writes in modules_to_save (`lm_head`)."""
    out = []
    for name in names:
        path = name.removeprefix("base_model.model.").rsplit(".", 1)[0]
        if path not in out:
            out.append(path)
    return out


class PeftTrainableOutsideAdapter(Rule):
    code = "TC1006"
    name = "peft-trainable-outside-adapter"
    severity = Severity.ERROR
    summary = "A PeftModel trains parameters outside the adapter and modules_to_save: its checkpoints lose them."
    explanation = (
        "Trainer saves a PeftModel with `save_pretrained`, which writes only what `get_peft_model_state_dict` "
        "returns: the adapter weights and the modules listed in `modules_to_save`. A base-model parameter "
        "unfrozen by hand after `get_peft_model` (`model.base_model.model.lm_head.weight.requires_grad_(True)`) "
        "trains, but no checkpoint and no `save_model` holds it: `PeftModel.from_pretrained` (and "
        "resume_from_checkpoint) restore the untrained values, silently. An error when the arguments save "
        "checkpoints (`save_strategy` defaults to \"steps\"), load the best model or push to the Hub; a warning "
        "otherwise (a script that calls `trainer.save_model()` loses them too). List the module in "
        "`modules_to_save` of the adapter config before `get_peft_model`, or keep it frozen."
    )
    fires = (Example(UNFROZEN_HEAD), Example(UNFROZEN_HEAD, args={"save_strategy": "no"}))
    silent = (Example(HEAD_IN_MODULES_TO_SAVE), Example(PLAIN_LORA))

    def check(self, ctx: Context) -> Iterator[Finding]:
        model = ctx.subject.instance
        if model is None or not ctx.subject.is_peft or not hasattr(model, "peft_config"):
            return
        lost, uncertain = unsaved_trainable(model)
        if not lost and not uncertain:
            return
        saving = ctx.has(Feature.SAVE) or ctx.has(Feature.LOAD_BEST) or ctx.has(Feature.PUSH_TO_HUB)
        names = lost or uncertain
        count = sum(p.numel() for n, p in model.named_parameters() if n in set(names))
        modules = _modules(names)
        site = library_site("peft.peft_model", r"output_state_dict = get_peft_model_state_dict\(")
        when = ("every checkpoint these arguments save" if ctx.has(Feature.SAVE) else "the saved model")
        doubt = ("" if lost else " unless PEFT finds the vocabulary resized against the base model's Hub config "
                 "(then it saves the embeddings)")
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__}: {', '.join(modules)} ({count:,} parameters) train but lie outside "
                 f"the adapter and modules_to_save; Trainer saves a PeftModel with save_pretrained, which writes only "
                 f"the adapter{' (' + str(site) + ')' if site else ''}: {when} and trainer.save_model() leave them "
                 f"out{doubt}, so PeftModel.from_pretrained reloads their untrained values",
            severity=Severity.ERROR if saving and lost else Severity.WARNING, member=modules[0],
            feature=Feature.SAVE if saving else "peft", call_site=site,
            fix=f"list them in the adapter config before get_peft_model: `LoraConfig(..., modules_to_save="
                f"{modules!r})`, or keep them frozen")
