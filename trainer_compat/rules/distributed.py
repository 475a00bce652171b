"""Sharded training (FSDP, DeepSpeed ZeRO-3): what the wrap policy and the partitioning need of the model.

The FSDP plan is read from the validated TrainingArguments the way transformers hands it to accelerate
(5.x: ``args.fsdp_plugin_args``; 4.x: the ``fsdp`` options and ``fsdp_config``), and the units are computed
with torch's own wrap policies over the real module tree, as FSDP's ``_recursive_wrap`` walks it.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainer_compat import analysis
from trainer_compat.example_models import EXPLICIT_WRAPPER
from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Location, Severity
from trainer_compat.protocol.model import Site
from trainer_compat.rules.base import Context, Example, Rule
from trainer_compat.subject import display_path

if TYPE_CHECKING:
    from torch import nn

TRANSFORMER, SIZE, NO_WRAP = "TRANSFORMER_BASED_WRAP", "SIZE_BASED_WRAP", "NO_WRAP"
_WRAP_SITE = Site(r"raise ValueError\(f\"Could not find the transformer layer class", ("accelerate.utils.dataclasses",))
_ZERO3_SITE = Site(r"DeepSpeed Zero-3 is not compatible with", ("transformers.modeling_utils",
                                                                  "transformers.integrations.accelerate"))


@dataclass(frozen=True)
class FsdpPlan:
    policy: str  # TRANSFORMER_BASED_WRAP, SIZE_BASED_WRAP or NO_WRAP
    layer_classes: tuple[str, ...] | None  # fsdp_config transformer_layer_cls_to_wrap, when given
    min_num_params: int
    version: int
    use_orig_params: bool


def fsdp_plan(args: Any) -> FsdpPlan | None:
    """The FSDP plugin settings the validated arguments produce (None: no FSDP, or XLA FSDP)."""
    if not getattr(args, "fsdp", None):
        return None
    config = dict(getattr(args, "fsdp_config", None) or {})
    if config.get("xla"):
        return None
    plugin = getattr(args, "fsdp_plugin_args", None)
    if isinstance(plugin, dict):  # 5.x: the kwargs of accelerate's FullyShardedDataParallelPlugin
        names = plugin.get("transformer_cls_names_to_wrap")
        policy = plugin.get("auto_wrap_policy") or NO_WRAP
        return FsdpPlan(policy, tuple(names.split(",")) if names else None, int(plugin.get("min_num_params") or 0),
                        int(plugin.get("fsdp_version", 1)), bool(plugin.get("use_orig_params", True)))
    options = {str(getattr(o, "value", o)) for o in args.fsdp} if isinstance(args.fsdp, (list, tuple)) else set()
    minimum = int(config.get("min_num_params") or 0)
    policy = (SIZE if minimum > 0 else TRANSFORMER) if "auto_wrap" in options else NO_WRAP
    names = config.get("transformer_layer_cls_to_wrap")
    return FsdpPlan(policy, tuple(names) if names else None, minimum, int(config.get("version", 1)),
                    str(config.get("use_orig_params", "true")).lower() == "true")


def _accelerate() -> str:
    from trainer_compat.versions import installed_accelerate

    return str(installed_accelerate())


def _accelerate_drops_absent() -> bool:
    """accelerate 1.16+ skips `_no_split_modules` names the model lacks; earlier releases raise ValueError."""
    from packaging.version import Version

    from trainer_compat.protocol.data import ACCELERATE_DROPS_ABSENT_NO_SPLIT
    from trainer_compat.versions import installed_accelerate

    found = installed_accelerate()
    return found is not None and found >= Version(ACCELERATE_DROPS_ABSENT_NO_SPLIT)


def _declared(ctx: Context, plan: FsdpPlan) -> tuple[list[str] | None, str]:
    if plan.layer_classes is not None:
        return list(plan.layer_classes), "fsdp_config transformer_layer_cls_to_wrap"
    info = ctx.subject.member("_no_split_modules")
    value = info.value if info.present else None
    return (list(value) if value is not None else None), f"{ctx.subject.cls.__name__}._no_split_modules"


def wrap_policy(plan: FsdpPlan, names: list[str], model: nn.Module) -> Callable[..., bool] | None:
    from torch.distributed.fsdp.wrap import size_based_auto_wrap_policy, transformer_auto_wrap_policy

    if plan.policy == TRANSFORMER:
        present = analysis.class_names(model)
        return functools.partial(transformer_auto_wrap_policy,
                                 transformer_layer_cls={present[n] for n in names if n in present})
    if plan.policy == SIZE and plan.min_num_params > 0:
        return functools.partial(size_based_auto_wrap_policy, min_num_params=plan.min_num_params)
    return None


def fsdp_units(model: nn.Module, policy: Callable[..., bool] | None) -> list[tuple[str, list[tuple[str, Any]]]]:
    """The FSDP units (root last) and their parameters, as torch's _recursive_wrap forms them."""
    taken: set[int] = set()
    units: list[tuple[str, list[tuple[str, Any]]]] = []

    def free(module: nn.Module, prefix: str = "") -> list[tuple[str, Any]]:
        return [(n, p) for n, p in module.named_parameters(prefix=prefix) if id(p) not in taken]

    if policy is None:  # no auto wrap: one unit, the root
        return [("", free(model))]

    def visit(prefix: str, module: nn.Module, only_children: bool) -> int:
        numel = sum(p.numel() for _, p in free(module))
        if not policy(module=module, recurse=True, nonwrapped_numel=numel):
            return 0
        wrapped = sum(visit(f"{prefix}.{name}" if prefix else name, child, False)
                      for name, child in module.named_children())
        if not only_children and policy(module=module, recurse=False, nonwrapped_numel=numel - wrapped):
            params = free(module, prefix)
            taken.update(id(p) for _, p in params)
            units.append((prefix, params))
            return numel
        return wrapped

    visit("", model, True)
    units.append(("", free(model)))
    return units


def _shown(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


_BLOCK = "from transformers.models.gpt2.modeling_gpt2 import GPT2Block\n"
_FSDP = {"fsdp": "full_shard auto_wrap"}
_FSDP1_CONFIG = {"version": 1, "use_orig_params": False, "transformer_layer_cls_to_wrap": ["GPT2Block"]}
_FSDP1_FLAT = {"fsdp": "full_shard auto_wrap", "fsdp_config": _FSDP1_CONFIG}


def _with_init(extra: str) -> str:
    return EXPLICIT_WRAPPER.replace("        self.model = tiny_causal_lm(tie=False)\n",
                                    "        self.model = tiny_causal_lm(tie=False)\n" + extra)


def _with_encoder(no_split: str) -> str:
    """An audio encoder beside the LM, as in multimodal wrappers; both declare their layer classes."""
    return _with_init("        from trainer_compat.testing import tiny_audio_encoder\n"
                      "        self.audio_tower = tiny_audio_encoder()\n"
                      f"        self._no_split_modules = {no_split}\n")


class FsdpNoSplitModules(Rule):
    code = "TC1201"
    name = "fsdp-no-split-modules"
    severity = Severity.ERROR
    summary = "FSDP transformer-based auto-wrap needs `_no_split_modules` (or fsdp_config layer classes) that exist."
    explanation = (
        "With FSDP and the TRANSFORMER_BASED_WRAP policy (the default of `fsdp=\"full_shard auto_wrap\"`) and no "
        "`fsdp_config['transformer_layer_cls_to_wrap']`, accelerate's `set_auto_wrap_policy(model)` takes the "
        "layer classes from `model._no_split_modules`. A class name that is not in the module tree raises "
        "ValueError \"Could not find the transformer layer class ... in the model.\" when Trainer prepares the "
        "model. A wrapper without `_no_split_modules` (or with `[]`) wraps no layer: the whole model becomes one "
        "FSDP unit that is all-gathered at once, so sharding saves no memory, while the inner models declare "
        "their layer classes. Aggregate them on the wrapper."
    )
    fires = (Example(EXPLICIT_WRAPPER, args=_FSDP),
             Example(_with_init("        self._no_split_modules = ['LlamaDecoderLayer']\n"), args=_FSDP),
             Example(_with_encoder("['GPT2Block']"), args=_FSDP))
    silent = (Example(_with_init("        self._no_split_modules = self.model._no_split_modules\n"), args=_FSDP),
              Example(EXPLICIT_WRAPPER,
                      args={**_FSDP, "fsdp_config": {"transformer_layer_cls_to_wrap": ["GPT2Block"]}}),
              Example(EXPLICIT_WRAPPER),
              Example(_with_encoder("['GPT2Block', 'WhisperEncoderLayer']"), args=_FSDP))

    def check(self, ctx: Context) -> Iterator[Finding]:
        plan = fsdp_plan(ctx.setup.args) if ctx.has(Feature.FSDP) else None
        model = ctx.subject.instance
        if plan is None or plan.policy != TRANSFORMER or model is None:
            return
        names, source = _declared(ctx, plan)
        present, known = analysis.class_names(model), analysis.known_layer_classes(model)
        name = ctx.subject.cls.__name__
        suggestion = f"`_no_split_modules = {known!r}`" if known else "`_no_split_modules` naming the layer classes"
        missing = [n for n in names or [] if n not in present]
        if missing and source.endswith("._no_split_modules") and _accelerate_drops_absent():
            names = [n for n in names or [] if n in present]
            yield self._dropped(ctx, missing, suggestion, known, whole=not names)
            if not names:
                return
        elif missing:
            site = ctx.site(_WRAP_SITE)
            yield self.finding(
                ctx, f"{source} names {_shown(missing)}, not a class in {name}'s module tree: accelerate's "
                     f"set_auto_wrap_policy{' (' + str(site) + ')' if site else ''} raises ValueError \"Could not "
                     f"find the transformer layer class {missing[0]} in the model.\" when Trainer prepares the model",
                member="_no_split_modules", feature=Feature.FSDP, call_site=site,
                fix=f"name classes of the model: {suggestion} on {name}, or fsdp_config "
                    f"transformer_layer_cls_to_wrap={known!r}")
            return
        if names and known and source.endswith("._no_split_modules"):
            yield from self._partial(ctx, names, known)
        if names or not known:
            return
        what = "has no `_no_split_modules`" if names is None else "has `_no_split_modules = []`"
        yield self.finding(
            ctx, f"{name} {what} and the FSDP arguments name no layer class: TRANSFORMER_BASED_WRAP wraps no "
                 f"layer, so the whole model is one FSDP unit, all-gathered at once (no memory saved by sharding), "
                 f"while its submodules declare {_shown(known)}",
            severity=Severity.WARNING, member="_no_split_modules", feature=Feature.FSDP,
            fix=f"aggregate the children's layer classes on the wrapper: {suggestion}, or set fsdp_config "
                f"transformer_layer_cls_to_wrap={known!r}")

    def _dropped(self, ctx: Context, missing: list[str], suggestion: str, known: list[str], whole: bool) -> Finding:
        name = ctx.subject.cls.__name__
        whole_model = ": the whole model is one unit, all-gathered at once (no memory saved by sharding)"
        return self.finding(
            ctx, f"{name}._no_split_modules names {_shown(missing)}, not a class in {name}'s module tree: accelerate "
                 f"{_accelerate()} leaves such names out, so those layers get no FSDP unit of their own"
                 + (whole_model if whole else ""),
            severity=Severity.WARNING, member="_no_split_modules", feature=Feature.FSDP,
            fix=f"name classes of the model: {suggestion} on {name}, or fsdp_config "
                f"transformer_layer_cls_to_wrap={known!r}")

    def _partial(self, ctx: Context, names: list[str], known: list[str]) -> Iterator[Finding]:
        left = [n for n in known if n not in names]
        if not left:
            return
        name = ctx.subject.cls.__name__
        yield self.finding(
            ctx, f"{name}._no_split_modules names {_shown(names)} but not {_shown(left)}, which its submodules "
                 "also declare: those layers get no FSDP unit of their own and stay in the root unit, all-gathered "
                 "at once with the rest of it",
            severity=Severity.WARNING, member="_no_split_modules", feature=Feature.FSDP,
            fix=f"aggregate every sub-model's layer classes: `_no_split_modules = {[*names, *left]!r}`")


class FsdpMixedRequiresGrad(Rule):
    code = "TC1202"
    name = "fsdp-mixed-requires-grad"
    severity = Severity.ERROR
    summary = "An FSDP unit mixes frozen and trainable parameters with use_orig_params=False (FSDP1)."
    explanation = (
        "FSDP1 flattens the parameters of each wrapped unit into one FlatParameter; with `use_orig_params=False` "
        "they must all have the same `requires_grad`, or FSDP raises ValueError \"Must flatten tensors with uniform "
        "`requires_grad` when `use_orig_params=False`\" when Trainer prepares the model. A frozen tower or frozen "
        "embeddings (LoRA, freeze_llm) in the same unit as trainable weights trigger it. The units are computed "
        "from the wrap policy the arguments select (layer classes, or min_num_params), the rest of the model "
        "forming the root unit."
    )
    fires = (Example(_with_init("        self.model.transformer.wte.weight.requires_grad_(False)\n"),
                     args=_FSDP1_FLAT),)
    silent = (Example(_with_init("        self.model.transformer.wte.weight.requires_grad_(False)\n"),
                      args={**_FSDP1_FLAT, "fsdp_config": {**_FSDP1_CONFIG, "use_orig_params": True}}),
              Example(_with_init("        self.model.transformer.h.requires_grad_(False)\n"), args=_FSDP1_FLAT))

    def check(self, ctx: Context) -> Iterator[Finding]:
        plan = fsdp_plan(ctx.setup.args) if ctx.has(Feature.FSDP) else None
        model = ctx.subject.instance
        if plan is None or plan.version != 1 or plan.use_orig_params or model is None:
            return
        names = _declared(ctx, plan)[0] or []
        if plan.policy == TRANSFORMER and any(n not in analysis.class_names(model) for n in names):
            return  # TC1201: accelerate raises before FSDP flattens anything
        mixed = []
        for unit, params in fsdp_units(model, wrap_policy(plan, names, model)):
            frozen = [n for n, p in params if not p.requires_grad]
            if frozen and len(frozen) < len(params):
                trainable = [n for n, p in params if p.requires_grad]
                mixed.append(f"{unit or 'the root unit'} (frozen: {_shown(frozen, 2)}; trainable: "
                             f"{_shown(trainable, 2)})")
        if not mixed:
            return
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__}: {len(mixed)} FSDP unit(s) mix frozen and trainable parameters: "
                 f"{'; '.join(mixed[:3])}: with fsdp_config use_orig_params=False (FSDP1) FSDP raises ValueError "
                 "\"Must flatten tensors with uniform `requires_grad` when `use_orig_params=False`\" when Trainer "
                 "prepares the model",
            member=None, feature=Feature.FSDP,
            fix="set fsdp_config use_orig_params=true (or FSDP2, fsdp_config version=2 on transformers 5), or make "
                "the frozen parts units of their own (their classes in transformer_layer_cls_to_wrap)")


def _zero_stage(config: Any) -> int | None:
    stage = ((config or {}).get("zero_optimization") or {}).get("stage")
    if stage is None:
        return None
    try:
        return int(stage)
    except (TypeError, ValueError):
        return None


def device_map_calls(cls: type) -> list[tuple[str, Location | None]]:
    """`from_pretrained(..., device_map=X)` calls (X not None) in the class's own source."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        file, first = inspect.getsourcefile(cls), inspect.getsourcelines(cls)[1]
    except (TypeError, OSError):
        return []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "from_pretrained"):
            continue
        for keyword in node.keywords:
            if keyword.arg == "device_map" and not (isinstance(keyword.value, ast.Constant)
                                                    and keyword.value.value is None):
                where = Location(display_path(file), first + node.lineno - 1) if file else None
                found.append((ast.unparse(keyword.value), where))
    return found


class Zero3DeviceMap(Rule):
    code = "TC1203"
    name = "zero3-device-map"
    severity = Severity.ERROR
    summary = "A model loaded with `device_map`, under DeepSpeed ZeRO-3."
    explanation = (
        "ZeRO-3 partitions the weights while the model is built (`zero.Init`, switched on once TrainingArguments "
        "with the DeepSpeed config exist). `from_pretrained(..., device_map=...)` then raises ValueError "
        "\"DeepSpeed Zero-3 is not compatible with passing a `device_map`\". A wrapper that calls it in __init__ "
        "fails as soon as it is built after the arguments; built before them, it escapes zero.Init and every "
        "rank loads the whole model. The check reads `hf_device_map` on the model and its submodules, and the "
        "`device_map=` arguments of the class's own from_pretrained calls."
    )
    _LOADS = ("\nimport tempfile\nfrom transformers import GPT2LMHeadModel\n_SAVED = tempfile.mkdtemp()\n"
              "tiny_causal_lm(tie=False).save_pretrained(_SAVED)\n")
    fires = (Example(EXPLICIT_WRAPPER.replace("\nclass Model", _LOADS + "\nclass Model").replace(
        "tiny_causal_lm(tie=False)\n\n", "GPT2LMHeadModel.from_pretrained(_SAVED, device_map='cpu')\n\n"),
        args={"deepspeed": {"zero_optimization": {"stage": 3}}}),)
    silent = (Example(fires[0].code, args={"deepspeed": {"zero_optimization": {"stage": 2}}}),
              Example(fires[0].code.replace(", device_map='cpu'", ""),
                      args={"deepspeed": {"zero_optimization": {"stage": 3}}}))

    def check(self, ctx: Context) -> Iterator[Finding]:
        if not ctx.has(Feature.DEEPSPEED) or _zero_stage(ctx.setup.deepspeed_config) != 3:
            return
        name = ctx.subject.cls.__name__
        mapped = [n or name for n, m in (ctx.subject.instance.named_modules() if ctx.subject.instance else ())
                  if vars(m).get("hf_device_map")]
        calls = device_map_calls(ctx.subject.cls)
        if not mapped and not calls:
            return
        what = (f"{_shown(mapped)} carr{'y' if len(mapped) > 1 else 'ies'} an hf_device_map" if mapped else
                f"{name} calls from_pretrained(..., device_map={calls[0][0]})")
        site = ctx.site(_ZERO3_SITE)
        yield self.finding(
            ctx, f"{what} and the DeepSpeed config uses ZeRO stage 3: built after TrainingArguments (as zero.Init "
                 f"needs), from_pretrained raises ValueError \"DeepSpeed Zero-3 is not compatible with passing a "
                 f"`device_map`\"{' (' + str(site) + ')' if site else ''}; built before, the model escapes zero.Init "
                 "and every rank loads it whole",
            member="hf_device_map" if mapped else None, feature=Feature.DEEPSPEED,
            call_site=site, location=calls[0][1] if calls and calls[0][1] else None,
            fix="drop device_map (DeepSpeed places and partitions the weights), and build the model after "
                "TrainingArguments")
