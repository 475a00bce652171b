"""Data-parallel training (DDP) and Trainer's unwrapping: what a multi-process launch needs of the model.

Trainer wraps the model in DistributedDataParallel whenever it runs on more than one process without FSDP
or DeepSpeed, with ``find_unused_parameters`` = ``ddp_find_unused_parameters`` when set, else (a
PreTrainedModel) ``not`` checkpointing, else (any other module) True.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from packaging.version import Version

from trainer_compat.analysis import CHECKPOINTING_METHODS, checkpointing_kwargs, uses_reentrant
from trainer_compat.example_models import EXPLICIT_WRAPPER
from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Severity
from trainer_compat.protocol.data import (
    NON_REENTRANT_DEFAULT,
    PARALLELIZABLE_FLAGS_UNTIL,
    RECURSIVE_UNWRAP,
    RECURSIVE_UNWRAP_EVERY_RUN_UNTIL,
)
from trainer_compat.protocol.model import Site
from trainer_compat.rules.base import Context, Example, Rule
from trainer_compat.versions import VersionRange

_FIND_UNUSED_SITE = Site(r"find_unused(_parameters\"\])? = (not|True|self\.args\.ddp_find_unused_parameters)")
_UNWRAP_SITE = Site(r"self\.model = unwrap_model\(self\.model, recursive=True\)")
_LAUNCH = "launched on more than one process (torchrun, accelerate launch)"


def _launched(ctx: Context) -> str:
    launch = getattr(ctx.setup, "launch", None)
    return launch.describe() if launch is not None and launch.distributed else _LAUNCH


def find_unused_parameters(ctx: Context) -> bool:
    """What Trainer passes to DDP as find_unused_parameters."""
    explicit = getattr(ctx.setup.args, "ddp_find_unused_parameters", None)
    if explicit is not None:
        return bool(explicit)
    if ctx.subject.is_pretrained:
        return not ctx.has(Feature.CHECKPOINTING)
    return True


def _ddp_applies(ctx: Context) -> bool:
    args = ctx.setup.args
    return not (ctx.has(Feature.FSDP) or ctx.has(Feature.DEEPSPEED) or getattr(args, "ddp_static_graph", None))


def _ddp_severity(ctx: Context) -> Severity:
    """An error where the launch (``--world-size``) or the arguments show a DDP run; a warning for a launch that
    may stay single-process (or is said to)."""
    launch = getattr(ctx.setup, "launch", None)
    if launch is not None:
        return Severity.ERROR if launch.distributed else Severity.WARNING
    args = ctx.setup.args
    distributed = int(getattr(args, "world_size", 1) or 1) > 1 or getattr(args, "ddp_find_unused_parameters",
                                                                          None) is not None
    return Severity.ERROR if distributed else Severity.WARNING


def _with(extra_init: str = "", methods: str = "") -> str:
    code = EXPLICIT_WRAPPER.replace("        self.model = tiny_causal_lm(tie=False)\n",
                                    "        self.model = tiny_causal_lm(tie=False)\n" + extra_init)
    return code.replace("    def forward", methods + "    def forward")


_UNUSED_HEAD = "        self.value_head = nn.Linear(32, 1)  # trainable, not used by forward\n"
_DELEGATE = ("    def gradient_checkpointing_enable(self, *args, **kwargs):  # whatever this transformers passes\n"
             "        self.model.gradient_checkpointing_enable(*args, **kwargs)\n\n")
_REENTRANT = {"gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": True}}


class DdpUnusedParameters(Rule):
    code = "TC1204"
    name = "ddp-unused-parameters"
    severity = Severity.ERROR
    summary = "Trainable parameters got no gradient while DDP runs with find_unused_parameters=False."
    explanation = (
        "DDP with `find_unused_parameters=False` waits for a gradient of every trainable parameter; one that "
        "gets none (an unused tower or head, an optional branch) makes the next step raise RuntimeError "
        "\"Expected to have finished reduction in the prior iteration before starting a new one\". Trainer uses "
        "False when `ddp_find_unused_parameters=False`, and by default for a PreTrainedModel trained without "
        "checkpointing (a plain nn.Module gets True: slower, but it trains). The probe records which trainable "
        "parameters received a gradient on the real step. On one process the same model trains silently."
    )
    fires = (Example(_with(_UNUSED_HEAD), args={"ddp_find_unused_parameters": False}, probe=True,
                     launch={"world_size": 2, "launcher": "torchrun"}),)
    silent = (Example(_with(_UNUSED_HEAD), probe=True),
              Example(EXPLICIT_WRAPPER, args={"ddp_find_unused_parameters": False}, probe=True))

    def check(self, ctx: Context) -> Iterator[Finding]:
        probe, model = ctx.probe, ctx.subject.instance
        step = probe.step if probe else None
        if step is None or model is None or probe.failure("train") or not _ddp_applies(ctx):
            return
        if find_unused_parameters(ctx):
            return
        without = sorted(n for n, p in model.named_parameters() if p.requires_grad and n not in step.grad_norms)
        if not without:
            return
        why = ("ddp_find_unused_parameters=False" if getattr(ctx.setup.args, "ddp_find_unused_parameters", None)
               is not None else f"the default for a PreTrainedModel ({ctx.subject.cls.__name__}) without "
                                "checkpointing")
        site = ctx.site(_FIND_UNUSED_SITE)
        shown = ", ".join(without[:5]) + (f" and {len(without) - 5} more" if len(without) > 5 else "")
        yield self.finding(
            ctx, f"{len(without)} trainable parameter(s) of {ctx.subject.cls.__name__} got no gradient on the real "
                 f"step: {shown}; Trainer's DDP uses find_unused_parameters=False ({why}), so "
                 f"{_launched(ctx)} the second step raises RuntimeError \"Expected to have finished reduction in "
                 "the prior iteration before starting a new one\"",
            severity=_ddp_severity(ctx), member=None, feature=Feature.TRAIN, call_site=site,
            fix="freeze what the loss does not use (requires_grad_(False)), or set ddp_find_unused_parameters=True")


class DdpReentrantCheckpointing(Rule):
    code = "TC1205"
    name = "ddp-reentrant-checkpointing"
    severity = Severity.ERROR
    summary = "Reentrant checkpointing under DDP with find_unused_parameters=True: 'marked ready twice'."
    explanation = (
        "With `find_unused_parameters=True` DDP walks the autograd graph after the forward and marks the "
        "parameters it cannot reach as unused, ready at once. Reentrant checkpointing (`use_reentrant=True`, the "
        "default of transformers before 5.0) hides the checkpointed blocks' parameters from that graph; their "
        "gradients then arrive during backward and DDP raises RuntimeError \"Expected to mark a variable ready "
        "only once\". Trainer passes find_unused_parameters=True for every model that is not a PreTrainedModel "
        "(a wrapper), unless `ddp_find_unused_parameters` says otherwise."
    )
    fires = (Example(_with(methods=_DELEGATE), args=_REENTRANT, launch={"world_size": 2}),
             Example(_with(methods=_DELEGATE), args={"gradient_checkpointing": True},
                     versions=VersionRange(until=NON_REENTRANT_DEFAULT)))
    silent = (Example(_with(methods=_DELEGATE),
                      args={**_REENTRANT, "gradient_checkpointing_kwargs": {"use_reentrant": False}}),
              Example(_with(methods=_DELEGATE), args={**_REENTRANT, "ddp_find_unused_parameters": False}),
              Example(_with(methods=_DELEGATE), args={"gradient_checkpointing": True},
                      versions=VersionRange(since=NON_REENTRANT_DEFAULT)))

    def check(self, ctx: Context) -> Iterator[Finding]:
        model = ctx.subject.instance
        if model is None or not _reentrant_with_find_unused(ctx) or not _checkpoints_reentrantly(ctx):
            return
        if not any(p.requires_grad for p in model.parameters()):
            return
        explicit = getattr(ctx.setup.args, "ddp_find_unused_parameters", None) is not None
        why = "ddp_find_unused_parameters=True" if explicit else \
            f"{ctx.subject.cls.__name__} is not a PreTrainedModel, so Trainer passes find_unused_parameters=True"
        source = "gradient_checkpointing_kwargs" if "use_reentrant" in checkpointing_kwargs(ctx.setup.args) else \
            f"the default of transformers {ctx.version}"
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__} checkpoints with use_reentrant=True ({source}) and {why}: "
                 f"{_launched(ctx)}, "
                 "DDP marks the checkpointed parameters unused after the forward and the first backward raises "
                 "RuntimeError \"Expected to mark a variable ready only once\"",
            severity=_ddp_severity(ctx), member="gradient_checkpointing_enable", feature=Feature.CHECKPOINTING,
            call_site=ctx.site(_FIND_UNUSED_SITE),
            fix="pass gradient_checkpointing_kwargs={'use_reentrant': False}, or set ddp_find_unused_parameters="
                "False (every trainable parameter must then get a gradient)")


def _reentrant_with_find_unused(ctx: Context) -> bool:
    """Checkpointing under DDP with find_unused_parameters=True, reentrant by the arguments or the default."""
    return ctx.has(Feature.CHECKPOINTING) and _ddp_applies(ctx) and find_unused_parameters(ctx) \
        and uses_reentrant(ctx, default=ctx.version < Version(NON_REENTRANT_DEFAULT))


def _checkpoints_reentrantly(ctx: Context) -> bool:
    """Something checkpoints, not trainer-compat's own (non-reentrant) shims, and a dry-run did not see it off."""
    methods = [ctx.subject.member(m) for m in CHECKPOINTING_METHODS]
    if not (ctx.subject.is_pretrained or any(m.present for m in methods)):
        return False  # TC001: nothing checkpoints
    if any((m.owner or "").startswith("trainer_compat.") for m in methods):
        return False  # trainer-compat's own shims checkpoint non-reentrantly
    probe = ctx.probe
    return not (probe is not None and probe.step is not None and not probe.step.recomputed)  # TC604: not in effect


def module_attributes(model: Any) -> list[tuple[str, str]]:
    """(module path, type of its `.module`) for every module that has an attribute named `module`."""
    from torch.nn import DataParallel
    from torch.nn.parallel import DistributedDataParallel

    found = []
    for name, module in model.named_modules():
        if isinstance(module, (DistributedDataParallel, DataParallel)):
            continue
        try:
            inner = module.module
        except Exception:  # hasattr() semantics: any error means "no attribute"
            continue
        found.append((name, type(inner).__name__))
    return found


class InnerModelNamedModule(Rule):
    code = "TC1206"
    name = "inner-model-named-module"
    severity = Severity.ERROR
    summary = "A (sub)module keeps a model in `.module`: Trainer's recursive unwrap under FSDP replaces it by it."
    explanation = (
        "Under FSDP, Trainer (4.47 to 5.2 before every training run; from 5.3 after an out-of-memory retry of "
        "`auto_find_batch_size`) runs `self.model = unwrap_model(self.model, recursive=True)`, and accelerate's "
        "recursive unwrap replaces every module that has an attribute named `module` by that attribute, the "
        "model itself included. A wrapper that stores its inner model as `self.module` is silently replaced by "
        "the inner model: its forward, its loss and the parameters outside the inner model drop out of "
        "training and of the saved checkpoint. Name the attribute anything else."
    )
    versions = VersionRange(since=RECURSIVE_UNWRAP)
    _MODULE = EXPLICIT_WRAPPER.replace("self.model", "self.module")
    fires = (Example(_MODULE, args={"fsdp": "full_shard auto_wrap",
                                    "fsdp_config": {"transformer_layer_cls_to_wrap": ["GPT2Block"]}},
                     versions=VersionRange(since=RECURSIVE_UNWRAP, until=RECURSIVE_UNWRAP_EVERY_RUN_UNTIL)),
             Example(_MODULE, args={"fsdp": "full_shard auto_wrap", "auto_find_batch_size": True,
                                    "fsdp_config": {"transformer_layer_cls_to_wrap": ["GPT2Block"]}},
                     versions=VersionRange(since=RECURSIVE_UNWRAP)))
    silent = (Example(EXPLICIT_WRAPPER, args={"fsdp": "full_shard auto_wrap", "auto_find_batch_size": True,
                                              "fsdp_config": {"transformer_layer_cls_to_wrap": ["GPT2Block"]}}),
              Example(_MODULE))

    def check(self, ctx: Context) -> Iterator[Finding]:
        model = ctx.subject.instance
        if model is None or not ctx.has(Feature.FSDP) or ctx.version < Version(RECURSIVE_UNWRAP):
            return
        every_run = ctx.version < Version(RECURSIVE_UNWRAP_EVERY_RUN_UNTIL)
        if not every_run and not getattr(ctx.setup.args, "auto_find_batch_size", False):
            return
        found = module_attributes(model)
        if not found:
            return
        name = ctx.subject.cls.__name__
        replaced = "; ".join(f"{path or name} is replaced by its .module ({kind})" for path, kind in found[:3])
        when = "before training" if every_run else "after an out-of-memory retry (auto_find_batch_size)"
        site = ctx.site(_UNWRAP_SITE)
        yield self.finding(
            ctx, f"with FSDP, Trainer {ctx.version} runs unwrap_model(self.model, recursive=True) {when}"
                 f"{' (' + str(site) + ')' if site else ''}: {replaced}; training and the checkpoint silently "
                 "lose the wrapper's forward and the parameters outside it",
            severity=Severity.ERROR if every_run else Severity.WARNING, member="module", feature=Feature.FSDP,
            call_site=site, fix="store the inner model under another attribute name (self.model, self.backbone)")


_DEVICE_MAP_SITE = Site(r'if getattr\(model, "hf_device_map", None\) is not None:')
_DISPATCHED = EXPLICIT_WRAPPER.replace(
    "        self.model = tiny_causal_lm(tie=False)\n",
    "        self.model = tiny_causal_lm(tie=False)\n"
    "        # what from_pretrained(..., device_map='auto') records on a model it spread over two GPUs\n"
    "        self.model.hf_device_map = {'transformer': 0, 'lm_head': 1}\n")
_EXPOSED = _DISPATCHED.replace(
    "    def forward", "    @property\n    def hf_device_map(self):\n        return self.model.hf_device_map\n\n"
                     "    def forward")




_FLAGGED = _DISPATCHED.replace("    def forward",
                               "    is_parallelizable = True\n    model_parallel = True\n\n    def forward")


def _accelerators(device_map: Any) -> list[Any]:
    return [d for d in set(dict(device_map).values()) if d not in ("cpu", "disk")]


class DeviceMapHidden(Rule):
    code = "TC1207"
    name = "device-map-hidden"
    severity = Severity.ERROR
    summary = "A sub-model dispatched over several devices (`device_map`) behind a wrapper that hides it."
    explanation = (
        "Trainer decides whether a model is already placed (model parallel) from `model.hf_device_map` on the "
        "model it is given. A wrapper around a model loaded with `device_map=\"auto\"` (spread over several GPUs) "
        "has no `hf_device_map` of its own, so Trainer takes it for an unplaced model: it moves the whole model "
        "to `args.device` (every layer onto one GPU: out of memory, or device-mismatch errors from the dispatch "
        "hooks that still route activations) and, with several GPUs visible, wraps it in DataParallel. Expose the "
        "inner model's `hf_device_map` on the wrapper."
    )
    fires = (Example(_DISPATCHED),)
    silent = (Example(_EXPOSED), Example(EXPLICIT_WRAPPER),
              Example(_FLAGGED, versions=VersionRange(until=PARALLELIZABLE_FLAGS_UNTIL)))

    def check(self, ctx: Context) -> Iterator[Finding]:
        model = ctx.subject.instance
        if model is None or ctx.subject.member("hf_device_map").present or self._flagged_parallel(ctx):
            return
        for path, module in model.named_modules():
            device_map = vars(module).get("hf_device_map") if path else None
            if not isinstance(device_map, dict) or len(_accelerators(device_map)) < 2:
                continue
            site = ctx.site(_DEVICE_MAP_SITE)
            name = ctx.subject.cls.__name__
            yield self.finding(
                ctx, f"{name}.{path} is dispatched over devices {sorted(map(str, _accelerators(device_map)))} "
                     f"(hf_device_map), but {name} has no `hf_device_map`: Trainer"
                     f"{' (' + str(site) + ')' if site else ''} takes it for an unplaced model and moves every "
                     "layer to args.device",
                member="hf_device_map", feature=Feature.TRAIN, call_site=site,
                fix=f"expose it: `@property def hf_device_map(self): return self.{path}.hf_device_map`")
            return

    @staticmethod
    def _flagged_parallel(ctx: Context) -> bool:
        if ctx.version >= Version(PARALLELIZABLE_FLAGS_UNTIL):
            return False
        return all(ctx.subject.member(m).present and ctx.subject.member(m).value
                   for m in ("is_parallelizable", "model_parallel"))
