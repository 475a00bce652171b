"""The shims of a Plan as Python source: the block ``trainer-compat fix`` adds to a wrapper class (and the code
``patch`` shows where it cannot delegate). Plain methods that name their delegate, so the result reads like code a
person would write."""

from __future__ import annotations

import inspect
import textwrap

from trainer_compat.shims.plan import Plan

MARKER = "# --- trainer-compat: Trainer shims delegating to the inner models (docs/shims.md) ---"


def _targets(paths: tuple[str, ...]) -> str:
    refs = [f"self.{p}" for p in paths]
    return f"({refs[0]},)" if len(refs) == 1 else f"({', '.join(refs)})"


def _checkpointing(plan: Plan, activation_ok: bool) -> list[str]:
    models = _targets(plan.carriers)
    out = []
    for name in plan.checkpointing:
        prefix = "activation" if name.startswith("activation") else "gradient"
        if prefix == "activation" and not activation_ok:
            continue
        if name.endswith("_disable"):
            out.append(f"""
def {name}(self):
    for model in {models}:
        model.{name}()
""")
            continue
        kw = f"{prefix}_checkpointing_kwargs"
        out.append(f"""
def {name}(self, {kw}=None, **kwargs):
    # non-reentrant unless asked otherwise: gradients reach checkpointed blocks behind frozen embeddings
    options = {{"use_reentrant": False, **({kw} or {{}})}}
    for model in {models}:
        model.{name}({kw}=options, **kwargs)
""")
    return out


def _lm(plan: Plan) -> list[str]:
    lm = f"self.{plan.lm}"
    out = []
    for name in ("config", "generation_config"):
        if getattr(plan, name):
            out.append(f"""
@property
def {name}(self):
    return {lm}.{name}

@{name}.setter
def {name}(self, value):
    {lm}.{name} = value
""")
    if plan.generate:
        out.append(f"\ndef generate(self, *args, **kwargs):\n    return {lm}.generate(*args, **kwargs)\n")
    if plan.prepare_inputs:
        out.append(f"\ndef prepare_inputs_for_generation(self, *args, **kwargs):\n"
                   f"    return {lm}.prepare_inputs_for_generation(*args, **kwargs)\n")
    if plan.device:
        out.append(f"\n@property\ndef device(self):\n    return {lm}.device\n")
    if plan.model_tags:
        out.append(f"\ndef add_model_tags(self, tags):\n    {lm}.add_model_tags(tags)\n")
    if plan.embeddings:
        out.append(f"""
def get_input_embeddings(self):
    return {lm}.get_input_embeddings()

def set_input_embeddings(self, value):
    {lm}.set_input_embeddings(value)

def get_output_embeddings(self):
    return {lm}.get_output_embeddings()
""")
    return out


def _published_var_keyword(plan: Plan) -> str | None:
    """The inner forward's ``**kwargs`` name when the written signature must carry it: only ``**loss_kwargs``, which
    transformers 4.46 reads as "accepts num_items_in_batch". Any other ``**kwargs`` is left out of the signature
    (Trainer keeps columns by name, and a ``**kwargs`` there draws TC101), and ``accepts_loss_kwargs = True`` says
    what it told transformers >= 4.47."""
    if plan.forward_params is None:
        return None
    var_kw = next((n for n, kind, _ in plan.forward_params if kind == inspect.Parameter.VAR_KEYWORD), None)
    return var_kw if var_kw == "loss_kwargs" else None


def _passes_loss_kwargs(plan: Plan) -> bool:
    return plan.forward_params is not None and plan.accepts_loss_kwargs is None and _published_var_keyword(
        plan) is None and any(kind == inspect.Parameter.VAR_KEYWORD for _, kind, _ in plan.forward_params)


def _attributes(plan: Plan) -> list[str]:
    lines = []
    if plan.main_input_name is not None:
        lines.append(f"main_input_name = {plan.main_input_name!r}")
    if plan.no_split_modules is not None:
        lines.append(f"_no_split_modules = {list(plan.no_split_modules)!r}")
    if plan.keys_to_ignore:
        lines.append("_keys_to_ignore_on_save = None")
    if plan.accepts_loss_kwargs is not None:
        lines.append(f"accepts_loss_kwargs = {plan.accepts_loss_kwargs!r}  # forward never uses num_items_in_batch")
    elif _passes_loss_kwargs(plan):
        lines.append("accepts_loss_kwargs = True  # forward passes num_items_in_batch on through **kwargs")
    return ["\n" + "\n".join(lines) + "\n"] if lines else []


def _saving(plan: Plan) -> list[str]:
    out = []
    if plan.tie_weights:
        out.append(f"""
def tie_weights(self, *args, **kwargs):
    for model in {_targets(plan.tie_weights)}:
        model.tie_weights(*args, **kwargs)
""")
    if plan.untie_state_dict:
        out.append('''
def state_dict(self, *args, **kwargs):
    # Trainer saves this module with safetensors, which refuses tensors that share memory (tied weights):
    # the same keys, with later aliases as copies; loading them back fills the one shared parameter
    state = super().state_dict(*args, **kwargs)
    if not kwargs.get("keep_vars"):
        seen = set()
        for key, tensor in list(state.items()):
            pointer = (tensor.device, tensor.untyped_storage().data_ptr())
            if pointer in seen and tensor.numel():
                state[key] = tensor.clone()
            seen.add(pointer)
    return state
''')
    return out


def forward_signature(plan: Plan, forward_in_body: bool = True) -> str | None:
    """``forward.__signature__ = ...``: the inner forward's parameter names, so Trainer keeps those columns."""
    if plan.forward_params is None:
        return None
    names = [n for n, kind, _ in plan.forward_params if kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                                      inspect.Parameter.VAR_KEYWORD)]
    var_kw = _published_var_keyword(plan)
    listed = textwrap.fill(", ".join(repr(n) for n in names), width=100, initial_indent=" " * 8,
                           subsequent_indent=" " * 8)
    tail = f'\n    + [inspect.Parameter("{var_kw}", inspect.Parameter.VAR_KEYWORD)]' if var_kw else ""
    inherited = "" if forward_in_body else (
        "\ndef forward(self, *args, **kwargs):\n    return super().forward(*args, **kwargs)\n")
    return inherited + f"""
# Trainer keeps only the dataset columns that forward's signature names (remove_unused_columns)
forward.__signature__ = inspect.Signature(
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in (
{listed},
    )]{tail}
)
"""


def render(plan: Plan, *, activation_ok: bool = True, forward_in_body: bool = True) -> str:
    """The block, indented for a class body (four spaces), starting with the marker comment; "" if empty."""
    parts = _attributes(plan) + _checkpointing(plan, activation_ok) + _lm(plan) + _saving(plan)
    signature = forward_signature(plan, forward_in_body)
    if signature:
        parts.append(signature)
    if not parts:
        return ""
    body = "\n".join(p.strip("\n") + "\n" for p in parts)
    return textwrap.indent(MARKER + "\n" + body, "    ", lambda line: bool(line.strip()))
