"""Arguments that transformers resolves differently from what they say."""

from __future__ import annotations

from collections.abc import Iterator

from trainer_compat.example_models import EXPLICIT_WRAPPER
from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Severity
from trainer_compat.protocol.arguments import ARGUMENT_ALIASES
from trainer_compat.protocol.data import NEW_NAMES
from trainer_compat.protocol.model import Site
from trainer_compat.rules.base import Context, Example, Rule
from trainer_compat.versions import VersionRange

_SITE = Site(r'\("gradient_checkpointing", "activation_checkpointing"\),', ("transformers.training_args",))

_CHECKPOINTED = EXPLICIT_WRAPPER.replace(
    "    def forward", "    def activation_checkpointing_enable(self, *args, **kwargs):\n"
                     "        self.model.activation_checkpointing_enable(*args, **kwargs)\n\n    def forward")


class DeprecatedAliasOverridden(Rule):
    code = "TC404"
    name = "checkpointing-alias-overridden"
    severity = Severity.ERROR
    summary = "`gradient_checkpointing*` is given, but `activation_checkpointing*` is too and silently wins."
    explanation = (
        "From transformers 5.23 `gradient_checkpointing` and `gradient_checkpointing_kwargs` are deprecated "
        "aliases of `activation_checkpointing` / `activation_checkpointing_kwargs`, used only when the new name "
        "is not set; `TrainingArguments.__post_init__` then overwrites the old name with the new one. Arguments "
        "that set both (a config merged from an old and a new template: `gradient_checkpointing: true`, "
        "`activation_checkpointing: false`) train without checkpointing, or with the other kwargs, and nothing "
        "says so: the memory checkpointing was meant to save is spent."
    )
    versions = VersionRange(since=NEW_NAMES)
    fires = (Example(_CHECKPOINTED, args={"gradient_checkpointing": True, "activation_checkpointing": False},
                     versions=versions),)
    silent = (Example(_CHECKPOINTED, args={"gradient_checkpointing": True}),
              Example(_CHECKPOINTED, args={"activation_checkpointing": True, "gradient_checkpointing": True},
                      versions=versions))

    def check(self, ctx: Context) -> Iterator[Finding]:
        requested = ctx.setup.requested
        if not requested or ctx.version not in self.versions:
            return
        for old, new in ARGUMENT_ALIASES:
            if old not in requested or new not in requested:
                continue
            resolved = getattr(ctx.setup.args, new, requested[new])
            if requested[old] == resolved:
                continue
            site = ctx.site(_SITE)
            effect = ("checkpointing stays off" if old == "gradient_checkpointing" and not resolved
                      else f"{new}={resolved!r} is used")
            yield self.finding(
                ctx, f"the arguments set {old}={requested[old]!r} and {new}={requested[new]!r}; transformers "
                     f"{ctx.version} uses {new} and overwrites {old} with it"
                     f"{' (' + str(site) + ')' if site else ''}: {effect}",
                member=new, feature=Feature.CHECKPOINTING, call_site=site,
                fix=f"give only {new} (the name of transformers {NEW_NAMES}+), with the value you mean")
