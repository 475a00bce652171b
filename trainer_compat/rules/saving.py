"""Saving: what safetensors makes of a non-PreTrainedModel's state dict."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from packaging.version import Version

from trainer_compat.example_models import EXPLICIT_WRAPPER
from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Severity
from trainer_compat.protocol.data import SAVE_UNWRAPS_COMPILE
from trainer_compat.protocol.model import Site
from trainer_compat.rules.base import Context, Example, Rule
from trainer_compat.signature import unwrap_compiled
from trainer_compat.subject import Subject
from trainer_compat.versions import VersionRange

_SAVE_SITE = Site(r"safetensors\.torch\.save_file\(")
_TIED = EXPLICIT_WRAPPER.replace("tiny_causal_lm(tie=False)", "tiny_causal_lm(tie=True)")
_COMPILED = """
import torch
from trainer_compat.testing import tiny_causal_lm

def Model():
    return torch.compile(tiny_causal_lm(tie=True), backend="eager")
"""


def shared_tensor_groups(state_dict: dict[str, Any]) -> list[list[str]]:
    """Groups of state-dict keys whose tensors share storage (what safetensors refuses to save)."""
    groups: dict[tuple[str, int], list[str]] = defaultdict(list)
    for key, tensor in state_dict.items():
        if kind_of_tensor(tensor) != "plain" or tensor.numel() == 0:
            continue
        try:
            groups[(str(tensor.device), _storage_id(tensor))].append(key)
        except Exception:  # a tensor subclass without a storage shares none
            continue
    return [sorted(keys) for keys in groups.values() if len(keys) > 1]


def kind_of_tensor(tensor: Any) -> str:
    """"plain", "lazy" (uninitialized), "sparse_coo"/... (a layout), a quantized dtype, or "other" (not a tensor
    or a tensor that refuses to say), without touching data: odd tensors are reported, never crashed on."""
    import torch
    from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

    if isinstance(tensor, (UninitializedParameter, UninitializedBuffer)):
        return "lazy"
    if not isinstance(tensor, torch.Tensor):
        return "other"
    try:
        if tensor.layout != torch.strided:
            return str(tensor.layout).replace("torch.", "")
        return str(tensor.dtype).replace("torch.", "") if tensor.is_quantized else "plain"
    except Exception:
        return "other"


def _storage_id(tensor: Any) -> int:
    """Which storage a tensor views: its data pointer, or on the meta device (no data) the storage itself."""
    storage = tensor.untyped_storage()
    return storage._cdata if tensor.device.type == "meta" else storage.data_ptr()


def non_contiguous(state_dict: dict[str, Any]) -> list[str]:
    return sorted(k for k, t in state_dict.items() if kind_of_tensor(t) == "plain" and not t.is_contiguous())


def _saved_unwrapped(ctx: Context) -> bool:
    """From 4.52 Trainer unwraps torch.compile and saves a compiled PreTrainedModel / PeftModel with save_pretrained."""
    instance = ctx.subject.instance
    inner = unwrap_compiled(instance) if instance is not None else None
    if inner is None or inner is instance or ctx.version < Version(SAVE_UNWRAPS_COMPILE):
        return False
    unwrapped = Subject.of(inner)
    return unwrapped.is_pretrained or unwrapped.is_peft


class UnsafeStateDict(Rule):
    code = "TC301"
    name = "unsafe-state-dict"
    severity = Severity.ERROR
    summary = "A non-PreTrainedModel whose state dict safetensors refuses: tied, non-contiguous, sparse or quantized."
    explanation = (
        "Trainer calls `save_pretrained` only on `PreTrainedModel` / `PeftModel` instances; any other module "
        "is saved as `safetensors.torch.save_file(model.state_dict(), ...)`. A wrapper around a model with "
        "tied weights (lm_head tied to the input embeddings) holds two keys over one storage, and safetensors "
        "raises `Some tensors share memory` at the first checkpoint, hours into training. A `torch.compile`d "
        "PreTrainedModel is saved the same way before " + SAVE_UNWRAPS_COMPILE + " (from then on Trainer unwraps "
        "it and calls `save_pretrained`). Sparse and quantized tensors, and a `state_dict()` that returns no mapping, "
        "are refused too. Uninitialized parameters of lazy modules are listed as not checked (info). 4.x can fall "
        "back to `save_safetensors=False`; 5.x always uses safetensors."
    )
    fires = (Example(_TIED, args={"save_strategy": "steps", "save_steps": 1}),
             Example(_COMPILED, args={"save_strategy": "steps", "save_steps": 1},
                     versions=VersionRange(until=SAVE_UNWRAPS_COMPILE)))
    silent = (Example(EXPLICIT_WRAPPER, args={"save_strategy": "steps", "save_steps": 1}),
              Example("from trainer_compat.testing import tiny_causal_lm\nModel = tiny_causal_lm",
                      args={"save_strategy": "steps", "save_steps": 1}),
              Example(_COMPILED, args={"save_strategy": "steps", "save_steps": 1},
                      versions=VersionRange(since=SAVE_UNWRAPS_COMPILE)))

    def check(self, ctx: Context) -> Iterator[Finding]:
        subject = ctx.subject
        if subject.is_pretrained or subject.is_peft or _saved_unwrapped(ctx):
            return
        if subject.instance is None:
            ctx.skip(self.code, "the state dict needs an instance")
            return
        if not getattr(ctx.setup.args, "save_safetensors", True):
            return
        try:
            state_dict = subject.instance.state_dict()
        except Exception as exc:  # a broken state_dict is itself a save failure
            yield self.finding(ctx, f"{subject.cls.__name__}.state_dict() raises {type(exc).__name__}: {exc}",
                               member="state_dict", feature=Feature.SAVE)
            return
        saves = ctx.has(Feature.SAVE) or ctx.has(Feature.LOAD_BEST)
        severity = Severity.ERROR if saves else Severity.WARNING
        when = ("at the first checkpoint" if saves else
                "when the model is saved (save_model(); save_strategy='no' writes no checkpoint during training)")
        site = ctx.site(_SAVE_SITE)
        from collections.abc import Mapping

        if not isinstance(state_dict, Mapping):
            yield self.finding(
                ctx, f"{subject.cls.__name__}.state_dict() returns a {type(state_dict).__name__}, not a mapping of "
                     f"names to tensors: safetensors.torch.save_file raises ValueError {when}", severity=severity,
                member="state_dict", feature=Feature.SAVE, call_site=site,
                fix="return a dict of name -> tensor from state_dict()")
            return
        yield from self._odd_tensors(ctx, state_dict, severity, when, site)
        for group in shared_tensor_groups(state_dict):
            yield self.finding(
                ctx, f"{subject.cls.__name__}'s state dict holds tensors that share memory: {', '.join(group)}; "
                     f"Trainer saves non-PreTrainedModels with safetensors.torch.save_file"
                     f"{' at ' + str(site) if site else ''}, which raises 'Some tensors share memory' {when}",
                severity=severity, member="state_dict", feature=Feature.SAVE, call_site=site, shared=group,
                fix="untie or clone the aliased weights in the saved state dict (e.g. override state_dict to drop "
                    "the tied key and tie_weights after load), or pass save_safetensors=False on transformers 4.x")
        bad = non_contiguous(state_dict)
        if bad:
            yield self.finding(
                ctx, f"{subject.cls.__name__}'s state dict holds non-contiguous tensors ({', '.join(bad[:5])}); "
                     f"safetensors refuses to save them {when}",
                severity=severity, member="state_dict", feature=Feature.SAVE, call_site=site,
                fix="make the parameters contiguous (`.contiguous()`) before training")

    def _odd_tensors(self, ctx: Context, state_dict: Any, severity: Severity, when: str,
                     site: Any) -> Iterator[Finding]:
        """What safetensors cannot take (sparse or quantized tensors), and what this rule cannot examine
        (uninitialized tensors of lazy modules): each said in a finding, never crashed on."""
        name = ctx.subject.cls.__name__
        kinds = {str(k): kind_of_tensor(t) for k, t in state_dict.items()}
        refused = {k: v for k, v in kinds.items() if v not in ("plain", "lazy", "other")}
        if refused:
            shown = ", ".join(f"{k} ({v})" for k, v in list(refused.items())[:5])
            yield self.finding(
                ctx, f"{name}'s state dict holds tensors safetensors cannot save: {shown}; "
                     f"safetensors.torch.save_file raises {when}", severity=severity, member="state_dict",
                feature=Feature.SAVE, call_site=site,
                fix="store them dense and unquantized in the state dict (to_dense(), dequantize()), or keep them out "
                    "of it (register_buffer(..., persistent=False)) and rebuild them on load")
        lazy = [k for k, v in kinds.items() if v == "lazy"]
        if lazy:
            yield self.finding(
                ctx, f"{name}'s state dict holds {len(lazy)} uninitialized (lazy) tensors ({', '.join(lazy[:4])}): "
                     "TC301 cannot check them for shared memory until a forward materializes them; --probe saves "
                     "them for real", severity=Severity.INFO, member="state_dict", feature=Feature.SAVE,
                fix="run one forward before training (or use --probe) so the lazy modules are materialized")


_RELOAD_SITE = Site(r"self\.model\.tie_weights\(\)")
_IGNORING = EXPLICIT_WRAPPER.replace("class Model(nn.Module):",
                                     "class Model(nn.Module):\n    _keys_to_ignore_on_save = ['model.lm_head.weight']")
_LOAD_BEST = {"eval_strategy": "steps", "save_strategy": "steps", "load_best_model_at_end": True}


class ReloadWithoutTieWeights(Rule):
    code = "TC302"
    name = "reload-without-tie-weights"
    severity = Severity.ERROR
    summary = "Keys left out of the checkpoint are re-tied with tie_weights(), which the model lacks."
    explanation = (
        "When a checkpoint is loaded back (load_best_model_at_end, resume) and its missing keys are exactly "
        "`model._keys_to_ignore_on_save`, Trainer calls `model.tie_weights()` to restore them. A wrapper that "
        "declares keys to ignore but has no `tie_weights` fails there, at the end of training."
    )
    fires = (Example(_IGNORING, args=_LOAD_BEST),)
    silent = (Example(_IGNORING.replace("    def forward", "    def tie_weights(self):\n"
                                        "        self.model.tie_weights()\n\n    def forward"), args=_LOAD_BEST),
              Example(_IGNORING),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        if not (ctx.has(Feature.LOAD_BEST) or ctx.has(Feature.RESUME)) or ctx.subject.is_pretrained:
            return
        keys = ctx.subject.member("_keys_to_ignore_on_save")
        if not keys.present or not keys.value or ctx.subject.member("tie_weights").present:
            return
        site = ctx.site(_RELOAD_SITE)
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__} declares _keys_to_ignore_on_save = {list(keys.value)!r} but has no "
                 f"tie_weights(); Trainer calls model.tie_weights(){' at ' + str(site) if site else ''} when it "
                 "loads a checkpoint that misses exactly those keys, and raises AttributeError",
            member="tie_weights", feature=Feature.LOAD_BEST if ctx.has(Feature.LOAD_BEST) else Feature.RESUME,
            call_site=site, fix="delegate tie_weights to the inner model: `def tie_weights(self): "
                                "self.model.tie_weights()`")
