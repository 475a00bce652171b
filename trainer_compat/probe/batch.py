"""The probe's inputs: the user's data, the user's sample, or an example built from what the model declares.

A synthesized example is an invention: a failure it could explain (input validation, a shape, an index) says
nothing about the user's run, so ``Inputs.synthetic`` travels with it and the probe rules report such failures
as inconclusive (TC609) rather than as errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer_compat.errors import UsageError
from trainer_compat.probe.synth import ExampleBuilder
from trainer_compat.signature import ForwardView
from trainer_compat.subject import Subject

# Forward parameters that configure the call rather than carry data: leaving them out invents nothing.
_NOT_INPUTS = frozenset({
    "return_dict", "output_attentions", "output_hidden_states", "use_cache", "past_key_values", "cache_position",
    "num_items_in_batch", "return_loss", "logits_to_keep", "num_logits_to_keep", "position_ids", "head_mask",
    "inputs_embeds", "token_type_ids", "decoder_inputs_embeds", "cross_attn_head_mask", "decoder_head_mask",
    "encoder_outputs", "kwargs", "loss_kwargs",
})
SETTLE = "pass your data (--data module:make_dataset, data= in the API) or one example (--sample file.pt|.json)"


@dataclass(frozen=True)
class Inputs:
    """What the probe trains on, and where it came from.

    ``example``: one example (tensors without a batch dimension), repeated to fill a batch; ``data``: the
    user's own examples (a Dataset or a list of mappings), used as they are with the user's collator.
    """

    example: dict[str, torch.Tensor] | None
    source: str  # "synthetic: ...", "sample file.pt", "data: ...", or why there is none
    synthetic: bool = False
    data: Any = None
    label_shape: str | None = None  # how synthetic labels were shaped, when they were
    omitted: tuple[str, ...] = field(default=())  # optional forward inputs the synthetic example leaves out

    @property
    def available(self) -> bool:
        return self.example is not None or self.data is not None

    @property
    def has_labels(self) -> bool:
        keys = self.example if self.example is not None else _first_keys(self.data)
        return bool(keys) and any("label" in str(k) for k in keys)

    def rows(self, count: int) -> Any:
        """``count`` training examples: copies of the one example, or the user's first (repeated) examples."""
        if self.example is not None:
            return [{k: v.clone() for k, v in self.example.items()} for _ in range(count)]
        return _first_rows(self.data, count)


def _first_keys(data: Any) -> list[str]:
    names = getattr(data, "column_names", None)
    if isinstance(names, list):
        return names
    try:
        first = data[0]
    except Exception:
        return []
    return list(first) if isinstance(first, dict) else []


def _first_rows(data: Any, count: int) -> Any:
    """The first example repeated: identical micro-batches make accumulation comparable to one batch."""
    if hasattr(data, "select") and hasattr(data, "column_names"):  # a datasets.Dataset: Trainer treats it apart
        return data.select([0] * count)
    first = data[0]
    return [first for _ in range(count)]


def user_data(data: Any, where: str = "data") -> Inputs:
    """The user's examples: a Dataset, a list of mappings, or a zero-argument callable returning one."""
    if callable(data) and not hasattr(data, "__getitem__"):
        try:
            data = data()
        except Exception as exc:
            raise UsageError(f"--data: {where} raised {type(exc).__name__}: {exc}") from exc
    if not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):  # an iterable dataset: its first example
        data = [next(iter(data), None)] if hasattr(data, "__iter__") else data
    try:
        size = len(data)
        first = data[0] if size else None
    except Exception as exc:
        raise UsageError(f"--data: {where} must be a Dataset or a non-empty list of examples "
                         f"({type(exc).__name__}: {exc})") from exc
    if size == 0 or first is None:
        raise UsageError(f"--data: {where} holds no examples")
    keys = ", ".join(map(str, first)) if isinstance(first, dict) else type(first).__name__
    return Inputs(None, f"data: {type(data).__name__} of {size} examples ({keys})", data=data)


def load_sample(spec: str | Path | dict[str, Any]) -> dict[str, torch.Tensor]:
    """A user sample: a dict of tensors/lists (one example), from the API or a .pt / .json file."""
    if isinstance(spec, dict):
        return _tensorise(spec, "sample")
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--sample: no such file {spec}")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UsageError(f"--sample: cannot read {spec}: {type(exc).__name__}: {exc}") from exc
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        raise UsageError(f"--sample: {spec} must hold one example as a mapping of names to tensors or lists")
    return _tensorise(data, str(spec))


def _tensorise(data: dict[str, Any], where: str) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in data.items():
        if isinstance(value, torch.Tensor):
            out[key] = value
            continue
        try:
            tensor = torch.tensor(value)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"--sample: {where}: {key!r} is not a tensor or a list of numbers") from exc
        out[key] = tensor
    return out


def infer_inputs(subject: Subject, trainer: str) -> Inputs:
    """Build one example from the forward signature and what the HF models inside the wrapper declare."""
    model = subject.instance
    if model is None:
        return Inputs(None, "no instance to probe")
    view = ForwardView.of(subject)
    builder = ExampleBuilder.for_model(model, subject, view, trainer)
    if builder is None:
        return Inputs(None, f"{subject.cls.__name__}.forward{view.short} declares no inputs the probe can build; "
                            f"{SETTLE}")
    example, unknown = builder.build()
    if unknown or not example:
        return Inputs(None, f"cannot build {', '.join(unknown) or 'any input'} for "
                            f"{type(builder.module).__name__}.forward; {SETTLE}")
    shown = ", ".join(f"{k}{list(v.shape)}" for k, v in example.items())
    omitted = tuple(n for n in view.keyword_params if n not in example and n not in _NOT_INPUTS)
    return Inputs(example, f"synthetic: {shown} from {builder.where}", synthetic=True,
                  label_shape=builder.label_note, omitted=omitted if builder.module is model else ())


def complete_labels(model: nn.Module, inputs: Inputs) -> Inputs:
    """Shape synthetic labels from what a label-free forward returns (called inside the probe's snapshot)."""
    if not inputs.synthetic or inputs.example is None or inputs.label_shape != "from-output":
        return inputs
    from trainer_compat.probe.synth import labels_from_output

    example = labels_from_output(model, inputs.example)
    if example is None:  # the forward needs its labels, or gave nothing to shape them by: keep token-shaped ones
        example = inputs.example
        note = "labels shaped like input_ids (a label-free forward gave no logits to shape them by)"
    else:
        label = next(k for k in example if "label" in k)
        note = f"{label}{list(example[label].shape)} shaped from a label-free forward's logits"
    shown = ", ".join(f"{k}{list(v.shape)}" for k, v in example.items())
    source = inputs.source.split(" from ", 1)[-1]
    return Inputs(example, f"synthetic: {shown} from {source}", synthetic=True, label_shape=note,
                  omitted=inputs.omitted)
