"""Checkpointing that is declared but cannot happen, and shims that can claim it without doing it."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from trainer_compat import analysis
from trainer_compat.example_models import EXPLICIT_WRAPPER, SWALLOWING_SHIM
from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Severity
from trainer_compat.rules.base import Context, Example, Expect, Rule
from trainer_compat.signature import submodule_called
from trainer_compat.subject import Provenance, parse_function, source_location

if TYPE_CHECKING:
    from torch import nn

_FLAG_LIBRARIES = ("transformers", "peft", "trl")

_DELEGATING = EXPLICIT_WRAPPER.replace(
    "    def forward",
    "    def gradient_checkpointing_enable(self, *args, **kwargs):\n"
    "        return self.model.gradient_checkpointing_enable(*args, **kwargs)\n\n"
    "    def activation_checkpointing_enable(self, *args, **kwargs):\n"
    "        return self.model.activation_checkpointing_enable(*args, **kwargs)\n\n"
    "    def forward")
_SWALLOWING = EXPLICIT_WRAPPER.replace("    def forward", SWALLOWING_SHIM + "    def forward")
_NOTHING_INSIDE = """
import torch.nn as nn

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Embedding(100, 16), nn.Linear(16, 100))

    def gradient_checkpointing_enable(self, *args, **kwargs):
        self.checkpointing = True

    def forward(self, input_ids, labels=None):
        logits = self.net(input_ids)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        return {"loss": loss, "logits": logits}
"""


def carries_flag(module: nn.Module) -> bool:
    """The module has a `gradient_checkpointing` flag that its code acts on.

    A transformers (or peft, trl) class is trusted; a user's class must set or declare the flag, read it and
    call a checkpoint function somewhere in its own methods (when their source is available).
    """
    from torch import nn

    mro = [k for k in type(module).__mro__ if k not in (nn.Module, object)]
    declared = "gradient_checkpointing" in vars(module) or any("gradient_checkpointing" in vars(k) for k in mro)
    if any(k.__module__.split(".")[0] in _FLAG_LIBRARIES for k in mro):
        return declared
    nodes = [n for n in (parse_function(f) for k in mro for f in vars(k).values() if callable(f)) if n is not None]
    if not nodes:
        return declared  # no source: cannot tell more
    assigned = any(_touches_flag(n, ast.Store) for n in nodes)
    return (declared or assigned) and any(_touches_flag(n, ast.Load) for n in nodes) \
        and any(_calls_checkpoint(n) for n in nodes)


def _touches_flag(node: ast.AST, ctx: type) -> bool:
    """``self.gradient_checkpointing`` read (ast.Load) or assigned (ast.Store); getattr/setattr with the name too."""
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute) and n.attr == "gradient_checkpointing" and isinstance(n.ctx, ctx):
            return True
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == ("getattr" if ctx is ast.Load else "setattr") \
                and len(n.args) > 1 and isinstance(n.args[1], ast.Constant) \
                and n.args[1].value == "gradient_checkpointing":
            return True
    return False


def _calls_checkpoint(node: ast.AST) -> bool:
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            name = n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
            if "checkpoint" in name.lower():
                return True
    return False


def unreached_layer_stacks(module: nn.Module) -> list[str]:
    """ModuleLists of repeated blocks that neither carry the flag nor sit under a module that does."""
    from torch import nn

    stacks = []
    modules = dict(module.named_modules())  # not get_submodule: it probes a user's __getattr__ with hasattr
    for name, child in modules.items():
        if not isinstance(child, nn.ModuleList) or len(child) < 2:
            continue
        parent = modules[name.rsplit(".", 1)[0]] if "." in name else module
        if hasattr(parent, "gradient_checkpointing") or any(hasattr(b, "gradient_checkpointing") for b in child):
            continue
        stacks.append(name)
    return stacks


class CheckpointingNotCarried(Rule):
    code = "TC401"
    name = "checkpointing-not-carried"
    severity = Severity.ERROR
    summary = "Checkpointing is switched on, but no submodule can carry it."
    explanation = (
        "A `PreTrainedModel` enables checkpointing by setting the `gradient_checkpointing` flag on the modules "
        "that implement it; it raises `does not support gradient checkpointing` without "
        "`supports_gradient_checkpointing`, and `is not compatible with gradient checkpointing` when no module "
        "carries the flag. A wrapper's checkpointing method can only work if some model inside it can "
        "checkpoint; otherwise it fails or, worse, does nothing while training proceeds with full activation "
        "memory. Layer stacks that no flag reaches stay un-checkpointed."
    )
    fires = (Example(_NOTHING_INSIDE, args={"gradient_checkpointing": True},
                     expect=Expect(Severity.ERROR, member="gradient_checkpointing_enable")),)
    silent = (Example(_DELEGATING, args={"gradient_checkpointing": True}),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        if not ctx.has(Feature.CHECKPOINTING) or ctx.subject.is_peft:
            return
        model = ctx.subject.instance
        if model is None:
            ctx.skip(self.code, "which submodules can checkpoint needs an instance")
            return
        if ctx.subject.is_pretrained:
            yield from self._pretrained(ctx, model)
            return
        if not any(ctx.subject.member(m).present for m in analysis.CHECKPOINTING_METHODS):
            return  # TC001 reports the missing method
        carriers = [n for n, m in ctx.subject.pretrained_submodules() if analysis.can_checkpoint(m)]
        flagged = [n for n, m in [("", model), *ctx.subject.submodules()] if carries_flag(m)]
        if not carriers and not flagged:
            yield self.finding(
                ctx, f"{ctx.subject.cls.__name__} declares checkpointing, but no module inside it can checkpoint "
                     "(no PreTrainedModel that supports it, no module with a `gradient_checkpointing` flag that "
                     "its code acts on): the method can only fail or leave checkpointing off",
                member="gradient_checkpointing_enable", feature=Feature.CHECKPOINTING,
                fix="checkpoint the blocks yourself with torch.utils.checkpoint.checkpoint, or turn "
                    "gradient_checkpointing off")
            return
        yield from self._partial(ctx, model, carriers)

    def _pretrained(self, ctx: Context, model: nn.Module) -> Iterator[Finding]:
        if analysis.can_checkpoint(model):
            yield from self._partial(ctx, model, [""])
            return
        why = ("does not declare supports_gradient_checkpointing" if not getattr(
            model, "supports_gradient_checkpointing", False) else "has no module with a `gradient_checkpointing` flag")
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__} {why}: its gradient_checkpointing_enable raises ValueError when "
                 "Trainer calls it",
            member="gradient_checkpointing_enable", feature=Feature.CHECKPOINTING,
            fix="implement checkpointing in the layers (GradientCheckpointingLayer), or turn it off")

    def _partial(self, ctx: Context, model: nn.Module, carriers: list[str]) -> Iterator[Finding]:
        modules = dict(model.named_modules())
        for name in carriers:
            sub = modules[name] if name else model
            for stack in unreached_layer_stacks(sub):
                full = f"{name}.{stack}" if name else stack
                blocks = modules[full]
                yield self.finding(
                    ctx, f"checkpointing does not reach {full} ({len(blocks)} blocks of "
                         f"{type(blocks[0]).__name__}): they keep their activations",
                    severity=Severity.WARNING, member="gradient_checkpointing_enable",
                    feature=Feature.CHECKPOINTING, fix="give those blocks a `gradient_checkpointing` flag "
                    "(GradientCheckpointingLayer) or checkpoint them in forward")


class CheckpointingShimMayFake(Rule):
    code = "TC402"
    name = "checkpointing-shim-may-fake"
    severity = Severity.ERROR
    summary = "A checkpointing shim can return normally without enabling checkpointing."
    explanation = (
        "A hand-written `gradient_checkpointing_enable` that catches every exception, logs it and falls back "
        "to `config.use_cache = False` returns normally whether or not checkpointing took effect: training "
        "runs with full activation memory (15.05 GiB instead of 4.04 GiB on a 1.1B model) while the log says "
        "checkpointing is on. It is an error unless every call inside the `try` reaches a PreTrainedModel that "
        "can checkpoint and takes the call (then nothing is swallowed today, and it is a warning). A shim must "
        "delegate and let errors propagate."
    )
    fires = (Example(_SWALLOWING.replace("self.model.gradient_checkpointing_enable(",
                                         "self.backbone.gradient_checkpointing_enable("),
                     args={"gradient_checkpointing": True}),
             Example(_SWALLOWING, args={"gradient_checkpointing": True}))
    silent = (Example(_DELEGATING, args={"gradient_checkpointing": True}),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        for name in analysis.CHECKPOINTING_METHODS:
            info = ctx.subject.member(name)
            if info.provenance not in (Provenance.DEFINED, Provenance.INHERITED) or _library_owned(info.owner):
                continue
            func = _class_function(ctx.subject.cls, name)
            node = parse_function(func)
            if node is None:
                continue
            problems = analysis.shim_problems(node, source_location(func))
            if not problems:
                continue
            latent = _latent_swallow(node, ctx.subject.instance) if analysis.enables_checkpointing(node) else None
            on = ctx.has(Feature.CHECKPOINTING) and latent is None
            message = f"{ctx.subject.cls.__name__}.{name} can return without enabling checkpointing: " \
                + "; ".join(problems)
            if latent:
                message += (f". Today its call reaches {latent}, which can checkpoint and takes the call, so "
                            "checkpointing does happen; a failure there (another inner model, another "
                            "transformers release) would be hidden")
            yield self.finding(
                ctx, message, severity=Severity.ERROR if on else Severity.WARNING, member=name,
                feature=Feature.CHECKPOINTING, location=info.location,
                fix=f"delegate and let errors propagate: `def {name}(self, *args, **kwargs): "
                    f"return self.<inner>.{name}(*args, **kwargs)`; run `trainer-compat check --probe` to prove "
                    "checkpointing is effective")



def _latent_swallow(node: ast.AST, instance: nn.Module | None) -> str | None:
    """When every checkpointing call inside the swallowing try blocks reaches a submodule (a PreTrainedModel
    that can checkpoint) whose method takes the call, nothing is swallowed today: the submodules' names."""
    if instance is None:
        return None
    tries = [t for t in ast.walk(node) if isinstance(t, ast.Try)
             and any(h in analysis.swallowing_handlers(t) for h in t.handlers)]
    calls = [c for t in tries for stmt in t.body for c in ast.walk(stmt) if isinstance(c, ast.Call)
             and isinstance(c.func, ast.Attribute) and "checkpointing_enable" in c.func.attr]
    if not calls:
        return None
    reached = []
    for call in calls:
        assert isinstance(call.func, ast.Attribute)
        target = submodule_called(call.func.value, instance)
        if target is None or not _takes_call(target, call):
            return None
        reached.append(f"{ast.unparse(call.func.value)} ({type(target).__name__})")
    return ", ".join(dict.fromkeys(reached))


def _takes_call(target: nn.Module, call: ast.Call) -> bool:
    assert isinstance(call.func, ast.Attribute)
    if not analysis.is_pretrained(target) or not analysis.can_checkpoint(target):
        return False
    method = getattr(target, call.func.attr, None)
    if method is None:
        return False
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return True  # forwards *args / **kwargs: the outer signature decides (TC002)
    try:
        inspect.signature(method).bind(*[None] * len(call.args), **{k.arg: None for k in call.keywords if k.arg})
    except (TypeError, ValueError):
        return False
    return True


def _library_owned(owner: str | None) -> bool:
    return owner is not None and owner.split(".")[0] in ("transformers", "torch", "peft", "trl")


def _class_function(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None
