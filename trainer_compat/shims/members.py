"""The members a patched class carries, built from a Plan. Each one delegates (resolving its submodule path at
call time, so a replaced inner model is followed) and lets every error propagate."""

from __future__ import annotations

import inspect
import threading
from typing import Any

from torch import nn

from trainer_compat.shims.discover import resolve
from trainer_compat.shims.plan import Plan, loss_kwargs_flag, method, published_params, signature_of

_DEFAULTS = {"every_n_layers": 1, "offload": False}  # what an older inner method may be spared


def accepted(method: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` minus the newer call-shape arguments ``method`` does not take while they hold their default.

    A non-default value that ``method`` cannot take raises TypeError: subject -> failure -> fix.
    """
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    out = {}
    for key, value in kwargs.items():
        if key in params:
            out[key] = value
        elif key not in _DEFAULTS or value != _DEFAULTS[key]:
            raise TypeError(f"{getattr(method, '__qualname__', method)} does not take {key}={value!r}: "
                            f"the inner model cannot honour it; upgrade it or drop {key} from the arguments")
    return out


def non_reentrant(kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """Checkpointing kwargs with ``use_reentrant=False`` unless given: gradients then reach the checkpointed
    blocks even when the embeddings before them are frozen (LoRA, frozen towers)."""
    out = dict(kwargs or {})
    out.setdefault("use_reentrant", False)
    return out


def module_class(plan: Plan) -> type[nn.Module]:
    """The class a plan patches, as the nn.Module class it is (patch() takes modules only)."""
    original = plan.original
    if not issubclass(original, nn.Module):
        raise TypeError(f"{original.__qualname__} is not a torch.nn.Module class: trainer-compat patches modules")
    return original


def _checkpointing(plan: Plan) -> dict[str, Any]:
    carriers = plan.carriers
    # The enables call a local named `checkpointing_enable`: TC402 reads this source and counts that as the call
    # (analysis.enables_checkpointing), as it did `target.gradient_checkpointing_enable(...)`.

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None, **kwargs):
        for path in carriers:
            target = resolve(self, path)
            call = dict(gradient_checkpointing_kwargs=non_reentrant(gradient_checkpointing_kwargs), **kwargs)
            checkpointing_enable = method(target, "gradient_checkpointing_enable")
            checkpointing_enable(**accepted(checkpointing_enable, call))

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs=None, every_n_layers=1,
                                        offload=False, **kwargs):
        shape = dict(every_n_layers=every_n_layers, offload=offload, **kwargs)
        for path in carriers:
            target = resolve(self, path)
            if hasattr(type(target), "activation_checkpointing_enable"):
                call = dict(activation_checkpointing_kwargs=non_reentrant(activation_checkpointing_kwargs), **shape)
                checkpointing_enable = method(target, "activation_checkpointing_enable")
            else:
                call = dict(gradient_checkpointing_kwargs=non_reentrant(activation_checkpointing_kwargs), **shape)
                checkpointing_enable = method(target, "gradient_checkpointing_enable")
            checkpointing_enable(**accepted(checkpointing_enable, call))

    def gradient_checkpointing_disable(self):
        for path in carriers:
            method(resolve(self, path), "gradient_checkpointing_disable")()

    def activation_checkpointing_disable(self):
        for path in carriers:
            target = resolve(self, path)
            if hasattr(type(target), "activation_checkpointing_disable"):
                method(target, "activation_checkpointing_disable")()
            else:
                method(target, "gradient_checkpointing_disable")()

    made = dict(gradient_checkpointing_enable=gradient_checkpointing_enable,
                activation_checkpointing_enable=activation_checkpointing_enable,
                gradient_checkpointing_disable=gradient_checkpointing_disable,
                activation_checkpointing_disable=activation_checkpointing_disable)
    return {n: made[n] for n in plan.checkpointing}


def _through(path: str, name: str) -> property:
    """A property that reads and writes ``name`` on the submodule at ``path``."""
    def fget(self):
        return getattr(resolve(self, path), name)

    def fset(self, value):
        setattr(resolve(self, path), name, value)

    return property(fget, fset, doc=f"`{name}` of self.{path} (read and write through; trainer-compat shim)")


def _lm_members(plan: Plan) -> dict[str, Any]:
    lm = plan.lm
    out: dict[str, Any] = {}
    if lm is None:
        return out
    for name in ("config", "generation_config"):
        if getattr(plan, name):
            out[name] = _through(lm, name)
    if plan.generate:
        def generate(self, *args, **kwargs):
            return method(resolve(self, lm), "generate")(*args, **kwargs)
        out["generate"] = generate
    if plan.prepare_inputs:
        def prepare_inputs_for_generation(self, *args, **kwargs):
            return method(resolve(self, lm), "prepare_inputs_for_generation")(*args, **kwargs)
        out["prepare_inputs_for_generation"] = prepare_inputs_for_generation
    if plan.device:
        out["device"] = property(lambda self: resolve(self, lm).device,
                                 doc=f"`device` of self.{lm} (read only; trainer-compat shim)")
    if plan.model_tags:
        def add_model_tags(self, tags):
            method(resolve(self, lm), "add_model_tags")(tags)
        out["add_model_tags"] = add_model_tags
    if plan.embeddings:
        def get_input_embeddings(self):
            return method(resolve(self, lm), "get_input_embeddings")()

        def set_input_embeddings(self, value):
            method(resolve(self, lm), "set_input_embeddings")(value)

        def get_output_embeddings(self):
            return method(resolve(self, lm), "get_output_embeddings")()
        out.update(get_input_embeddings=get_input_embeddings, set_input_embeddings=set_input_embeddings,
                   get_output_embeddings=get_output_embeddings)
    if plan.main_input_name is not None:
        out["main_input_name"] = plan.main_input_name
    out.update(_trl_members(plan, lm))
    return out


def _is_checkpointing(self: nn.Module) -> bool:
    """Whether any module of the wrapper checkpoints (transformers' own definition, over the whole wrapper)."""
    return any(bool(getattr(m, "gradient_checkpointing", False)) for m in self.modules())


def _trl_members(plan: Plan, lm: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if plan.backbone:
        out["base_model"] = property(lambda self: resolve(self, lm).base_model,
                                     doc=f"`base_model` of self.{lm} (read only; trainer-compat shim)")
    if plan.warnings_issued:
        out["warnings_issued"] = _through(lm, "warnings_issued")
    return out


def _saving(plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    models = plan.tie_weights
    if models:
        def tie_weights(self, *args, **kwargs):
            for path in models:
                method(resolve(self, path), "tie_weights")(*args, **kwargs)
        out["tie_weights"] = tie_weights
    if plan.no_split_modules is not None:
        out["_no_split_modules"] = list(plan.no_split_modules)
    if plan.keys_to_ignore:
        out["_keys_to_ignore_on_save"] = None
    if plan.untie_state_dict:
        out["state_dict"] = _untied_state_dict(module_class(plan))
    return out


def _untied_state_dict(original: type[nn.Module]) -> Any:
    def state_dict(self, *args, **kwargs):
        """The same keys; tensors that share memory with an earlier key are copies (safetensors refuses aliases)."""
        state = original.state_dict(self, *args, **kwargs)
        if kwargs.get("keep_vars") or (len(args) > 2 and args[2]):
            return state
        seen: set[tuple[str, int]] = set()
        for key, tensor in list(state.items()):
            if not hasattr(tensor, "untyped_storage") or tensor.numel() == 0 or tensor.device.type == "meta":
                continue
            storage = (str(tensor.device), tensor.untyped_storage().data_ptr())
            if storage in seen:
                state[key] = tensor.clone()
            seen.add(storage)
        return state

    return state_dict


def _forward(plan: Plan) -> dict[str, Any]:
    """The pass-through forward: the inner forward's parameter names, without its ``**kwargs`` (unless
    ``**loss_kwargs``: ``published_params``); ``accepts_loss_kwargs`` says what that ``**kwargs`` told Trainer."""
    out: dict[str, Any] = {}
    original = module_class(plan)
    if plan.forward_params is not None:
        def forward(self, *args, **kwargs):
            return original.forward(self, *args, **kwargs)
        # mypy does not model attributes set on a function object; inspect.signature and the rules read these two
        forward.__signature__ = signature_of(published_params(plan))  # type: ignore[attr-defined]  # Trainer's columns
        forward.__wrapped__ = original.forward  # type: ignore[attr-defined]  # what the rules read: the user's source
        out["forward"] = forward
    flag = loss_kwargs_flag(plan)
    if flag is not None:
        out["accepts_loss_kwargs"] = flag
    return out


_ACTIVE = threading.local()


def _guarded_getattr(original: type[nn.Module]) -> Any:
    user_getattr = original.__getattr__

    def __getattr__(self, name):
        try:
            return nn.Module.__getattr__(self, name)
        except AttributeError:
            pass
        active = _ACTIVE.__dict__.setdefault("names", set())
        key = (id(self), name)
        if key in active:  # the user's __getattr__ asked for this very name again: it would recurse forever
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r} (its __getattr__ looks it up "
                                 "through itself; trainer-compat's recursion guard stopped it)")
        active.add(key)
        try:
            return user_getattr(self, name)
        finally:
            active.discard(key)

    return __getattr__


def namespace(plan: Plan) -> dict[str, Any]:
    ns: dict[str, Any] = {}
    ns.update(_checkpointing(plan))
    ns.update(_lm_members(plan))
    ns.update(_saving(plan))
    ns.update(_forward(plan))
    if plan.checkpointing_state:
        ns["is_gradient_checkpointing"] = property(_is_checkpointing, doc="trainer-compat shim")
    if plan.guard_getattr:
        ns["__getattr__"] = _guarded_getattr(module_class(plan))
    return ns
