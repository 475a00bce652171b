"""Members the enabled features need: present, and callable the way this Trainer calls them."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from trainer_compat.findings import Finding, Severity
from trainer_compat.noop import does_nothing
from trainer_compat.protocol.data import EVERY_N_LAYERS
from trainer_compat.protocol.model import Guard, Kind, Requirement
from trainer_compat.rules.base import Context, Example, Expect, Rule, first_feature
from trainer_compat.subject import MemberInfo, Provenance, source_location
from trainer_compat.versions import VersionRange

_WRAPPER = """
import torch.nn as nn
from trainer_compat.testing import tiny_causal_lm

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
"""

_NOOP_GETATTR = """
    def __getattr__(self, name):  # a catch-all: every missing name is a callable that does nothing
        try:
            return super().__getattr__(name)
        except AttributeError:
            return lambda *args, **kwargs: None
"""


def _applicable(ctx: Context) -> Iterator[Requirement]:
    for req in ctx.requirements:
        if req.member == "forward":
            continue
        if req.guard is Guard.FALLBACK and req.preferred and ctx.subject.member(req.preferred).present:
            continue
        yield req


class MissingMember(Rule):
    code = "TC001"
    name = "missing-member"
    severity = Severity.ERROR
    summary = "A member that Trainer reads or calls for the enabled features is missing."
    explanation = (
        "Trainer reads or calls some members of the model only when a feature is switched on: "
        "`gradient_checkpointing_enable` (5.23+: `activation_checkpointing_enable` first) with checkpointing, "
        "`get_input_embeddings` with NEFTune, `generate` and `generation_config` with predict_with_generate, "
        "`config` with label smoothing, `_keys_to_ignore_on_save` when a checkpoint is loaded back. "
        "A plain `nn.Module` wrapper has none of them, and Trainer fails when it reaches the call, "
        "often after minutes or hours of work. Each member's provenance is shown: defined on the class, "
        "inherited, set on the instance, or delegated through `__getattr__`."
    )
    fires = (Example(_WRAPPER, args={"gradient_checkpointing": True},
                     expect=Expect(Severity.ERROR, fragment="raises AttributeError before the first step")),
             Example(_WRAPPER + _NOOP_GETATTR, args={"gradient_checkpointing": True},
                     expect=Expect(Severity.WARNING, fragment="is a callable that does nothing")))
    silent = (Example(_WRAPPER, args={}),
              Example(_WRAPPER + _NOOP_GETATTR, args={}),
              Example("from trainer_compat.testing import tiny_causal_lm\nModel = tiny_causal_lm",
                      args={"gradient_checkpointing": True}))

    def check(self, ctx: Context) -> Iterator[Finding]:
        for req in _applicable(ctx):
            info = ctx.subject.member(req.member)
            if info.provenance is Provenance.DELEGATED and req.kind is Kind.METHOD and does_nothing(info.value):
                yield self._does_nothing(ctx, req, info)
            elif req.when_missing is None:
                continue
            elif info.provenance is Provenance.MISSING:
                yield self._missing(ctx, req, req.when_missing)
            elif info.provenance is Provenance.UNKNOWN:
                yield self._missing(ctx, req, Severity.WARNING, unknown=True)

    def _does_nothing(self, ctx: Context, req: Requirement, info: MemberInfo) -> Finding:
        """A catch-all ``__getattr__`` answers every name with a callable that does nothing: Trainer's ``hasattr``
        passes and its call returns without effect. A warning: only the dry-run proves what the feature lost."""
        feature = first_feature(req, ctx)
        site = ctx.site(req.site)
        message = (f"{ctx.subject.cls.__name__}.{req.member} is reached through __getattr__ "
                   f"({info.location or 'the class'}) and is a callable that does nothing; with {feature.value} on, "
                   f"transformers {ctx.version} calls {req.call_text()}{' at ' + str(site) if site else ''}, "
                   f"which then returns without effect: what {feature.value} needs of it silently does not happen")
        return self.finding(ctx, message, severity=Severity.WARNING, member=req.member, feature=feature,
                            fix=f"define {req.member} on the class (delegate to the inner model), or make __getattr__ "
                                "raise AttributeError for names it does not know; `--probe` proves whether the "
                                "feature takes effect", call_site=site, guard=req.guard.value)

    def _missing(self, ctx: Context, req: Requirement, severity: Severity, unknown: bool = False) -> Finding:
        feature = first_feature(req, ctx)
        site = ctx.site(req.site)
        cls = ctx.subject.cls.__name__
        what = f"`{req.member}`"
        if req.guard is Guard.FALLBACK:
            what = f"neither `{req.preferred}` nor `{req.member}`"
        state = "may lack" if unknown else ("has" if req.guard is Guard.FALLBACK else "has no")
        when = f" ({req.condition})" if req.condition else ""
        message = (f"{cls} {state} {what}; with {feature.value} on, transformers {ctx.version} calls "
                   f"{req.call_text()}{' at ' + str(site) if site else ''}{when}: {req.consequence}")
        if unknown:
            message += " (its __getattr__ could not be asked without an instance)"
        return self.finding(ctx, message, severity=severity, member=req.member, feature=feature,
                            fix=req.fix, call_site=site, guard=req.guard.value)


def _bind_error(value: Any, req: Requirement, class_level: bool) -> str | None:
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):
        return None
    placeholders = dict.fromkeys(req.call.kwargs) if req.call else {}
    try:
        if class_level and inspect.isfunction(value):
            signature.bind(None, **placeholders)
        else:
            signature.bind(**placeholders)
    except TypeError as exc:
        return f"{exc}"
    return None


class IncompatibleSignature(Rule):
    code = "TC002"
    name = "incompatible-signature"
    severity = Severity.ERROR
    summary = "A member exists but the call this transformers version makes does not bind to it."
    explanation = (
        "The calls change between releases: 4.x calls "
        "`gradient_checkpointing_enable(gradient_checkpointing_kwargs=...)`; 5.16+ adds `every_n_layers=...` and "
        "5.17+ `offload=...`; 5.23+ calls "
        "`activation_checkpointing_enable(activation_checkpointing_kwargs=..., every_n_layers=..., offload=...)` "
        "or, as a deprecated fallback, `gradient_checkpointing_enable(gradient_checkpointing_kwargs=..., "
        "every_n_layers=..., offload=...)`. A shim written for one version with a fixed signature raises "
        "TypeError on the other. Forward `*args, **kwargs` to the inner model instead."
    )
    fires = (Example(_WRAPPER.replace(
        "    def forward",
        "    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):\n"
        "        self.model.gradient_checkpointing_enable("
        "gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)\n"
        "\n    def forward"), args={"gradient_checkpointing": True}, versions=VersionRange(since=EVERY_N_LAYERS)),
             Example(_WRAPPER.replace(
                 "    def forward",
                 "    def gradient_checkpointing_enable(self):\n"
                 "        self.model.gradient_checkpointing_enable()\n"
                 "\n    def forward"), args={"gradient_checkpointing": True}))
    silent = (Example(_WRAPPER.replace(
        "    def forward",
        "    def gradient_checkpointing_enable(self, *args, **kwargs):\n"
        "        self.model.gradient_checkpointing_enable(*args, **kwargs)\n"
        "\n    def forward"), args={"gradient_checkpointing": True}),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        for req in _applicable(ctx):
            if req.kind is not Kind.METHOD or req.call is None:
                continue
            info = ctx.subject.member(req.member)
            value = self._callable(ctx, info)
            if value is None:
                continue
            error = _bind_error(value, req, class_level=ctx.subject.instance is None)
            if error is None:
                continue
            site = ctx.site(req.site)
            signature = _signature_text(value)
            message = (f"{ctx.subject.cls.__name__}.{req.member}{signature} cannot take the call transformers "
                       f"{ctx.version} makes, {req.call_text()}{' at ' + str(site) if site else ''}: {error}")
            yield self.finding(
                ctx, message, member=req.member, feature=first_feature(req, ctx), call_site=site,
                location=info.location or source_location(value) or ctx.subject.location,
                fix=f"accept and forward any arguments: `def {req.member}(self, *args, **kwargs): "
                    f"return self.<inner>.{req.member}(*args, **kwargs)`",
            )

    @staticmethod
    def _callable(ctx: Context, info: MemberInfo) -> Any:
        if not info.present or info.provenance is Provenance.UNKNOWN:
            return None
        if ctx.subject.instance is not None:
            return info.value if callable(info.value) else None
        for klass in ctx.subject.cls.__mro__:
            if info.name in vars(klass):
                raw = vars(klass)[info.name]
                return raw if callable(raw) else None
        return None


def _signature_text(value: Any) -> str:
    try:
        return str(inspect.signature(value))
    except (TypeError, ValueError):
        return "(...)"
