"""What a wrapper needs: a hashable, picklable Plan (which shim delegates where), and the notes around it."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from trainer_compat import analysis
from trainer_compat.shims.discover import Delegates, discover, is_peft, is_pretrained, resolve
from trainer_compat.shims.trl_members import trl_members
from trainer_compat.signature import unwrap_compiled
from trainer_compat.subject import Provenance, Subject, parse_function

GC_SHAPES = (("gradient_checkpointing_kwargs",), ("gradient_checkpointing_kwargs", "every_n_layers"),
             ("gradient_checkpointing_kwargs", "every_n_layers", "offload"))  # 4.46-5.15, 5.16, 5.17+
AC_SHAPES = (("activation_checkpointing_kwargs", "every_n_layers", "offload"),)  # 5.23+
CHECKPOINTING = ("gradient_checkpointing_enable", "gradient_checkpointing_disable", "activation_checkpointing_enable",
                 "activation_checkpointing_disable")
_SIMPLE = (type(None), bool, int, float, str)
_EMPTY = "<required>"


@dataclass(frozen=True)
class Plan:
    """Which shims a patched class carries; every delegate is a submodule path resolved at call time."""

    original: type
    checkpointing: tuple[str, ...] = ()  # checkpointing members installed (delegating to ``carriers``)
    carriers: tuple[str, ...] = ()
    lm: str | None = None
    config: bool = False
    generation_config: bool = False
    generate: bool = False
    prepare_inputs: bool = False  # prepare_inputs_for_generation (PEFT's CAUSAL_LM / SEQ_2_SEQ_LM adapters read it)
    device: bool = False  # a read-only `device` (PEFT's prompt-learning adapters read it first in get_peft_model)
    model_tags: bool = False  # add_model_tags (TRL's trainers call it unguarded from TRL 0.27)
    backbone: bool = False  # base_model (TRL's fused LM head: SFT >= 1.15, DPO/GRPO 1.16 train through it)
    checkpointing_state: bool = False  # is_gradient_checkpointing (DPO/GRPO on TRL 1.16 read it at every step)
    warnings_issued: bool = False  # the inner model's dict (TRL releases after 0.12 wrote into it; 5.x has none)
    embeddings: bool = False
    tie_weights: tuple[str, ...] = ()
    no_split_modules: tuple[str, ...] | None = None
    keys_to_ignore: bool = False  # declare `_keys_to_ignore_on_save = None`
    main_input_name: str | None = None
    forward_params: tuple[tuple[str, int, Any], ...] | None = None  # (name, kind, default or _EMPTY)
    accepts_loss_kwargs: bool | None = None
    untie_state_dict: bool = False
    guard_getattr: bool = False

    @property
    def members(self) -> list[str]:
        """The members the patched class defines, in a stable order."""
        flags = (("config", self.config), ("generation_config", self.generation_config), ("generate", self.generate),
                 ("prepare_inputs_for_generation", self.prepare_inputs), ("device", self.device),
                 ("add_model_tags", self.model_tags), ("base_model", self.backbone),
                 ("is_gradient_checkpointing", self.checkpointing_state), ("warnings_issued", self.warnings_issued),
                 ("get_input_embeddings", self.embeddings), ("set_input_embeddings", self.embeddings),
                 ("get_output_embeddings", self.embeddings), ("tie_weights", bool(self.tie_weights)),
                 ("_no_split_modules", self.no_split_modules is not None),
                 ("_keys_to_ignore_on_save", self.keys_to_ignore),
                 ("main_input_name", self.main_input_name is not None),
                 ("forward", self.forward_params is not None),
                 ("accepts_loss_kwargs", loss_kwargs_flag(self) is not None),
                 ("state_dict", self.untie_state_dict), ("__getattr__", self.guard_getattr))
        return list(self.checkpointing) + [n for n, on in flags if on]


_PAIRS = {"gradient_checkpointing_disable": "gradient_checkpointing_enable",
          "activation_checkpointing_disable": "activation_checkpointing_enable"}
_EMBEDDINGS = ("get_input_embeddings", "set_input_embeddings", "get_output_embeddings")


def restrict(plan: Plan, needed: set[str]) -> Plan:
    """The plan cut down to the members in ``needed`` (what the enabled features read, and what a finding names):
    ``trainer-compat fix`` writes only those unless ``--all``. A checkpointing method keeps its enable/disable
    partner, a property its setter, the embedding accessors go together; the ``__getattr__`` guard always stays
    (Trainer's probes go through it whatever the arguments)."""
    checkpointing = tuple(n for n in plan.checkpointing if n in needed or _PAIRS.get(n) in needed)
    return dataclasses.replace(
        plan, checkpointing=checkpointing, carriers=plan.carriers if checkpointing else (),
        config=plan.config and "config" in needed,
        generation_config=plan.generation_config and "generation_config" in needed,
        generate=plan.generate and "generate" in needed,
        prepare_inputs=plan.prepare_inputs and "prepare_inputs_for_generation" in needed,
        device=plan.device and "device" in needed, model_tags=plan.model_tags and "add_model_tags" in needed,
        backbone=plan.backbone and "base_model" in needed,
        checkpointing_state=plan.checkpointing_state and "is_gradient_checkpointing" in needed,
        warnings_issued=plan.warnings_issued and "warnings_issued" in needed,
        embeddings=plan.embeddings and any(n in needed for n in _EMBEDDINGS),
        tie_weights=plan.tie_weights if "tie_weights" in needed else (),
        no_split_modules=plan.no_split_modules if "_no_split_modules" in needed else None,
        keys_to_ignore=plan.keys_to_ignore and "_keys_to_ignore_on_save" in needed,
        main_input_name=plan.main_input_name if "main_input_name" in needed else None,
        forward_params=plan.forward_params if "forward" in needed else None,
        accepts_loss_kwargs=plan.accepts_loss_kwargs if needed & {"accepts_loss_kwargs", "forward"} else None,
        untie_state_dict=plan.untie_state_dict and "state_dict" in needed)


@dataclass
class Notes:
    replaced: dict[str, str] = field(default_factory=dict)  # member -> why the user's own one was replaced
    undelegable: dict[str, str] = field(default_factory=dict)  # member -> why, and the code to write
    ambiguous: list[str] = field(default_factory=list)
    delegates: Delegates | None = None
    inside: str | None = None  # the module patched instead of the one given (a PeftModel's or compiled base)


def make_plan(model: nn.Module, original: type, delegate_to: str | None = None, trainer: str = "trainer"
              ) -> tuple[Plan, Notes]:
    """``trainer``: the trainer kind; TRL's kinds add what they read beyond Trainer (``trl_members``)."""
    notes = Notes()
    if is_pretrained(model) or is_peft(model):
        return Plan(original), notes
    if unwrap_compiled(model) is not model:
        notes.undelegable["forward"] = ("a torch.compile wrapper: name the class it compiles as the target, or "
                                        "`patch(model)`, which patches the compiled module (`_orig_mod`)")
        return Plan(original), notes
    found = discover(model, delegate_to)
    notes.delegates, notes.ambiguous = found, list(found.ambiguous)
    subject = Subject.of(model)
    fields: dict[str, Any] = {"guard_getattr": _getattr_recurses(subject)}
    fields.update(_checkpointing(subject, found, notes))
    fields.update(_lm_members(subject, model, found))
    fields.update(trl_members(subject, model, found.lm, trainer))
    fields.update(_saving(subject, model, found, notes))
    fields.update(_forward(subject, model, found, notes))
    return Plan(original, **fields), notes


def _state(subject: Subject, name: str) -> str:
    """'ok', 'missing' or 'broken' for a member of the wrapper."""
    info = subject.member(name)
    if info.provenance is Provenance.BROKEN:
        return "broken"
    return "ok" if info.present else "missing"


def _getattr_recurses(subject: Subject) -> bool:
    return subject.custom_getattr is not None and _state(subject, "_trainer_compat_absent_") == "broken"


# --- checkpointing ----------------------------------------------------------------------------------------


def shim_fault(subject: Subject, name: str) -> str | None:
    """Why the wrapper's own checkpointing method must be replaced, or None when it is sound (or absent)."""
    info = subject.member(name)
    if info.provenance is Provenance.BROKEN:
        return f"its look-up raises {info.error}"
    if info.provenance not in (Provenance.DEFINED, Provenance.INHERITED) or not name.endswith("_enable"):
        return None
    func = _class_function(subject.cls, name)
    owner = getattr(func, "__module__", "") or ""
    if func is None or owner.split(".")[0] in ("torch", "transformers", "peft", "trl"):
        return None
    unbound = [s for s in (GC_SHAPES if name.startswith("gradient") else AC_SHAPES) if not _binds(func, s)]
    faults = [f"its signature does not take the call {name}({'=..., '.join(unbound[-1])}=...) that "
              "transformers makes from 5.16/5.17/5.23 on"] if unbound else []
    fake = _fakes(func)
    faults += [fake] if fake else []
    return "; ".join(faults) or None


def _binds(func: Any, keywords: tuple[str, ...]) -> bool:
    try:
        inspect.signature(func).bind(None, **dict.fromkeys(keywords))
    except (TypeError, ValueError):
        return False
    return True


def _fakes(func: Any) -> str | None:
    from trainer_compat.subject import source_location

    node = parse_function(func)
    problems = analysis.shim_problems(node, source_location(func)) if node is not None else []
    return "it " + "; ".join(problems) if problems else None


def _class_function(cls: type, name: str) -> Any:
    return next((vars(k)[name] for k in cls.__mro__ if name in vars(k)), None)


def _checkpointing(subject: Subject, found: Delegates, notes: Notes) -> dict[str, Any]:
    faults = {n: shim_fault(subject, n) for n in CHECKPOINTING}
    gc_needed = _state(subject, "gradient_checkpointing_enable") == "missing" or faults[
        "gradient_checkpointing_enable"] is not None
    install = [n for n in CHECKPOINTING if faults[n] is not None
               or (gc_needed and _state(subject, n) == "missing" and _library_has(n))]
    if not install:
        return {}
    if not found.checkpointing:
        notes.undelegable["gradient_checkpointing_enable"] = _NO_CARRIER
        return {}
    notes.replaced.update({n: fault for n in install if (fault := faults[n]) is not None})
    return {"checkpointing": tuple(install), "carriers": tuple(found.checkpointing)}


def _library_has(name: str) -> bool:
    from transformers import PreTrainedModel

    return hasattr(PreTrainedModel, name)


_NO_CARRIER = (
    "no submodule can carry checkpointing (no PreTrainedModel that supports it, no module with its own "
    "checkpointing method): checkpoint the blocks yourself, e.g.\n"
    "    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None, **kwargs):\n"
    "        self.gradient_checkpointing = True\n"
    "    # and in forward: h = torch.utils.checkpoint.checkpoint(block, h, use_reentrant=False) "
    "if self.gradient_checkpointing and self.training else block(h)"
)


# --- language-model members -------------------------------------------------------------------------------


def _lm_members(subject: Subject, model: nn.Module, found: Delegates) -> dict[str, Any]:
    if found.lm is None:
        return {}
    from transformers import GenerationConfig, PretrainedConfig

    lm = resolve(model, found.lm)
    out: dict[str, Any] = {"lm": found.lm}
    config = subject.member("config")
    out["config"] = isinstance(getattr(lm, "config", None), PretrainedConfig) and (
        _state(subject, "config") != "ok" or not isinstance(config.value, PretrainedConfig))
    gen = subject.member("generation_config")
    out["generation_config"] = isinstance(getattr(lm, "generation_config", None), GenerationConfig) and (
        _state(subject, "generation_config") != "ok" or not isinstance(gen.value, GenerationConfig))
    out["generate"] = _state(subject, "generate") != "ok" and callable(getattr(lm, "generate", None)) \
        and _can_generate(lm)
    out["prepare_inputs"] = _state(subject, "prepare_inputs_for_generation") != "ok" \
        and callable(getattr(lm, "prepare_inputs_for_generation", None)) and _can_generate(lm)
    out["device"] = _state(subject, "device") != "ok" and _has_device(lm)
    out["model_tags"] = _state(subject, "add_model_tags") != "ok" and callable(getattr(lm, "add_model_tags", None))
    out["embeddings"] = _state(subject, "get_input_embeddings") != "ok" and hasattr(lm, "get_input_embeddings")
    if _state(subject, "main_input_name") != "ok":
        out["main_input_name"] = str(getattr(lm, "main_input_name", "input_ids"))
    return out


def _has_device(lm: nn.Module) -> bool:
    try:
        return getattr(lm, "device", None) is not None
    except Exception:  # a device property that raises (no parameters): nothing to delegate to
        return False


def method(module: nn.Module, name: str) -> Callable[..., Any]:
    """``module.<name>``, a method of the inner model. torch types every attribute nn.Module does not declare as
    ``Tensor | Module`` (its ``__getattr__``); a value that cannot be called raises the TypeError calling it would."""
    member = getattr(module, name)
    if not callable(member):
        raise TypeError(f"'{type(member).__name__}' object is not callable")
    return member


def _can_generate(lm: nn.Module) -> bool:
    target = lm.get_base_model() if is_peft(lm) else lm
    try:
        return bool(method(target, "can_generate")())
    except Exception:  # no can_generate: not a generating model
        return False


# --- saving -----------------------------------------------------------------------------------------------


def _saving(subject: Subject, model: nn.Module, found: Delegates, notes: Notes) -> dict[str, Any]:
    from trainer_compat.rules.saving import shared_tensor_groups

    try:
        state = model.state_dict()  # the class's own: a wrapper that already unties its copies needs nothing
    except Exception:  # a broken override: judge the plain module state (TC301 reports the override)
        state = nn.Module.state_dict(model)
    out: dict[str, Any] = {"untie_state_dict": bool(shared_tensor_groups(state))}
    if _state(subject, "tie_weights") != "ok":
        out["tie_weights"] = tuple(p for p in found.models if hasattr(resolve(model, p), "tie_weights"))
    if _state(subject, "_keys_to_ignore_on_save") != "ok":
        out["keys_to_ignore"] = True
    out["no_split_modules"] = _no_split_modules(subject, model, notes)
    return out


def _no_split_modules(subject: Subject, model: nn.Module, notes: Notes) -> tuple[str, ...] | None:
    """The wrapper's own layer classes that exist in the tree, plus every sub-model's (TC1201): when it declares
    none, an empty list (a fake answer: FSDP then wraps no layer), classes not in the tree (FSDP raises) or only
    some of the sub-models' (the others stay in the root unit)."""
    known = analysis.known_layer_classes(model)
    own = subject.member("_no_split_modules")
    declared = _listed(own.value) if own.present and own.provenance is not Provenance.BROKEN else []
    present = {type(m).__name__ for m in model.modules()}
    wanted = tuple(dict.fromkeys([*(n for n in declared if n in present), *known]))
    if not known or (declared and set(declared) == set(wanted)):
        return None
    if own.provenance is Provenance.INSTANCE:  # set in __init__: shadows anything the class carries
        notes.undelegable["_no_split_modules"] = (
            f"it is {own.value!r}, set on the instance, which a class-level shim cannot override: "
            f"write `self._no_split_modules = {list(wanted)!r}` where it is set")
        return None
    if own.present:
        notes.replaced["_no_split_modules"] = f"it is {own.value!r}; the sub-models name {known!r}"
    return wanted


def _listed(names: Any) -> list[str]:
    """A model's ``_no_split_modules`` in a stable order (some models declare a set)."""
    if not names:
        return []
    return sorted(names) if isinstance(names, (set, frozenset)) else list(names)


# --- forward ----------------------------------------------------------------------------------------------


def _forward(subject: Subject, model: nn.Module, found: Delegates, notes: Notes) -> dict[str, Any]:
    from trainer_compat.shims.discover import forward_target
    from trainer_compat.signature import ForwardView, kwargs_keys_read, uses_num_items_in_batch

    view = ForwardView.of(subject)
    out: dict[str, Any] = {}
    inner_path = forward_target(model) or found.lm
    if view.var_keyword and not view.keyword_params and inner_path is not None:
        inner = resolve(model, inner_path)
        inner = inner.get_base_model() if is_peft(inner) else inner
        read = [k for k, _ in kwargs_keys_read(type(model).forward)]
        out["forward_params"] = _pass_through(inspect.signature(inner.forward), read)
    passes = view.var_keyword is not None if out.get("forward_params") is None else any(
        kind == inspect.Parameter.VAR_KEYWORD for _, kind, _ in out["forward_params"])
    if passes and _state(subject, "accepts_loss_kwargs") == "missing" and uses_num_items_in_batch(
            type(model).forward, model) is False:
        out["accepts_loss_kwargs"] = False
    return out


def published_params(plan: Plan) -> tuple[tuple[str, int, Any], ...]:
    """The pass-through forward's parameters as its signature shows them: without the inner forward's
    ``**kwargs`` (Trainer keeps columns by name; a ``**kwargs`` there draws TC101), except ``**loss_kwargs``,
    which transformers 4.46 reads as "accepts num_items_in_batch"."""
    return tuple(p for p in plan.forward_params or () if p[1] != inspect.Parameter.VAR_KEYWORD
                 or p[0] == "loss_kwargs")


def loss_kwargs_flag(plan: Plan) -> bool | None:
    """The ``accepts_loss_kwargs`` the patched class declares: the plan's, else True where the published signature
    dropped a ``**kwargs`` that passes num_items_in_batch on (what transformers >= 4.47 read from it), unless the
    class declares its own."""
    if plan.accepts_loss_kwargs is not None:
        return plan.accepts_loss_kwargs
    dropped = len(published_params(plan)) < len(plan.forward_params or ())
    return True if dropped and not hasattr(plan.original, "accepts_loss_kwargs") else None


def _pass_through(inner: inspect.Signature, extra: list[str]) -> tuple[tuple[str, int, Any], ...]:
    params = [(p.name, int(p.kind), _default(p)) for p in inner.parameters.values()]
    names = {n for n, _, _ in params}
    added = [(n, int(inspect.Parameter.KEYWORD_ONLY), None) for n in extra if n not in names]
    at = next((i for i, (_, k, _) in enumerate(params) if k == inspect.Parameter.VAR_KEYWORD), len(params))
    return tuple(params[:at] + added + params[at:])


def _default(p: inspect.Parameter) -> Any:
    if p.default is inspect.Parameter.empty:
        return _EMPTY
    return p.default if isinstance(p.default, _SIMPLE) else None


def signature_of(params: tuple[tuple[str, int, Any], ...]) -> inspect.Signature:
    """The pass-through forward's signature (``self`` first, as on the class)."""
    made = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for name, raw_kind, default in params:
        kind = inspect._ParameterKind(raw_kind)
        if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD) or default == _EMPTY:
            made.append(inspect.Parameter(name, kind))
        else:
            made.append(inspect.Parameter(name, kind, default=default))
    return inspect.Signature(made)
