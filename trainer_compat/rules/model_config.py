"""`config`: absent, a dict, or a real PretrainedConfig, against what the enabled features read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from packaging.version import Version

from trainer_compat.example_models import EXPLICIT_WRAPPER
from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Severity
from trainer_compat.protocol.data import USE_CACHE_ASSIGNMENT
from trainer_compat.protocol.model import Site
from trainer_compat.rules.base import Context, Example, Rule

_USE_CACHE_SITE = Site(r"self\.model\.config\.use_cache = ")
_DEEPSPEED_SITE = Site(r"hasattr\(model\.config, \"hidden_size\"\)|model\.config\.hidden_size",
                       ("transformers.integrations.deepspeed",))
_AUTO_KEYS = ("reduce_bucket_size", "stage3_prefetch_bucket_size", "stage3_param_persistence_threshold")

_CONFIG_FIX = ("expose the inner model's config object (not a copy, not a dict): "
               "`@property def config(self): return self.model.config`")


def _auto_hidden_size_keys(config: Any) -> list[str]:
    zero = (config or {}).get("zero_optimization", {}) or {}
    return [k for k in _AUTO_KEYS if zero.get(k) == "auto"]


class ConfigContract(Rule):
    code = "TC201"
    name = "config-contract"
    severity = Severity.ERROR
    summary = "`config` is absent or is not a PretrainedConfig, where the enabled features read it."
    explanation = (
        "Trainer reads `model.config` for label smoothing (4.56+), the model card (push_to_hub), DeepSpeed "
        "'auto' bucket sizes (`hidden_size`), `keys_to_ignore_at_inference` during evaluation, and 5.x assigns "
        "`model.config.use_cache` at construction, which fails on a dict. Without a config some of these are "
        "skipped silently: caches returned by the forward reach the prediction gatherer, `use_cache` is not "
        "turned off. Expose the inner model's `PretrainedConfig`, aliased, not copied."
    )
    fires = (Example(EXPLICIT_WRAPPER.replace("        self.model = tiny_causal_lm(tie=False)",
                                              "        self.model = tiny_causal_lm(tie=False)\n"
                                              "        self.config = {'model_type': 'custom'}")),)
    silent = (Example(EXPLICIT_WRAPPER.replace("        self.model = tiny_causal_lm(tie=False)",
                                               "        self.model = tiny_causal_lm(tie=False)\n"
                                               "        self.config = self.model.config")),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        info = ctx.subject.member("config")
        if not info.present or ctx.subject.instance is None:
            if info.provenance.value == "missing":
                yield from self._absent(ctx)
            return
        yield from self._wrong_type(ctx, info.value)
        yield from self._deepspeed(ctx, info.value)

    def _absent(self, ctx: Context) -> Iterator[Finding]:
        if ctx.has(Feature.DEEPSPEED) and _auto_hidden_size_keys(ctx.setup.deepspeed_config):
            yield from self._deepspeed(ctx, None)
        losses = ["evaluation cannot drop `keys_to_ignore_at_inference` (caches returned by the forward reach "
                  "the prediction gatherer)"] if ctx.has(Feature.EVAL) else []
        if ctx.version >= Version(USE_CACHE_ASSIGNMENT):
            losses.append("`use_cache` is not set from the arguments")
        lost = "; ".join(losses) if losses else "nothing that these arguments switch on needs it"
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__} has no `config`: Trainer skips what reads it silently: {lost}",
            severity=Severity.WARNING if losses else Severity.INFO, member="config", feature=Feature.TRAIN,
            fix=_CONFIG_FIX)

    def _wrong_type(self, ctx: Context, config: Any) -> Iterator[Finding]:
        from transformers import PretrainedConfig

        if config is None or isinstance(config, PretrainedConfig):
            return
        kind = type(config).__name__
        if ctx.version >= Version(USE_CACHE_ASSIGNMENT) and not _accepts_setattr(config):
            site = ctx.site(_USE_CACHE_SITE)
            yield self.finding(
                ctx, f"{ctx.subject.cls.__name__}.config is a {kind}; transformers {ctx.version} assigns "
                     f"model.config.use_cache in Trainer.__init__{' at ' + str(site) if site else ''}, "
                     f"which raises AttributeError on a {kind}",
                member="config", feature=Feature.TRAIN, call_site=site, fix=_CONFIG_FIX)
            return
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__}.config is a {kind}, not a PretrainedConfig: reporting integrations "
                 "call config.to_dict() / to_json_string() and the model card reads config attributes",
            severity=Severity.WARNING, member="config", feature=Feature.TRAIN, fix=_CONFIG_FIX)

    def _deepspeed(self, ctx: Context, config: Any) -> Iterator[Finding]:
        keys = _auto_hidden_size_keys(ctx.setup.deepspeed_config) if ctx.has(Feature.DEEPSPEED) else []
        if not keys or _has_hidden_size(config) or _has_hidden_size(getattr(config, "text_config", None)):
            return  # trainer_config_finalize falls back to config.text_config.hidden_size(s)
        site = ctx.site(_DEEPSPEED_SITE)
        what = "has no `config`" if config is None else "has a config without hidden_size / hidden_sizes"
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__} {what}, but the DeepSpeed config sets {', '.join(keys)} to 'auto', "
                 "which Trainer fills from config.hidden_size: it raises ValueError before training",
            member="config", feature=Feature.DEEPSPEED, call_site=site,
            fix="set the bucket sizes to numbers in the DeepSpeed config, or expose a config with hidden_size")


def _has_hidden_size(config: Any) -> bool:
    return config is not None and any(hasattr(config, a) for a in ("hidden_size", "hidden_sizes"))


def _accepts_setattr(config: Any) -> bool:
    try:
        config.__trainer_compat_probe__ = None
        delattr(config, "__trainer_compat_probe__")
    except (AttributeError, TypeError):
        return False
    return True
