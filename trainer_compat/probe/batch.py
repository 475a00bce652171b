"""The probe's inputs: a synthetic example built from what the model declares, or the user's sample."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from trainer_compat.errors import UsageError
from trainer_compat.forward import ForwardView, label_names
from trainer_compat.subject import Subject

SEQ_LEN = 8
_TEXT_INPUTS = ("input_ids",)


@dataclass(frozen=True)
class Inputs:
    """One training example (tensors without a batch dimension), and where it came from."""

    example: dict[str, torch.Tensor] | None
    source: str  # "synthetic from ...", "sample file.pt", or why there is none

    @property
    def available(self) -> bool:
        return self.example is not None

    @property
    def has_labels(self) -> bool:
        return bool(self.example) and any("label" in k for k in self.example)


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
    """Build one example from the forward signature, ``main_input_name`` and the config's sizes."""
    model = subject.instance
    if model is None:
        return Inputs(None, "no instance to probe")
    view = ForwardView.of(subject)
    source_module, names = _declaring_module(subject, view)
    if source_module is None:
        return Inputs(None, f"{subject.cls.__name__}.forward{view.short} declares no inputs the probe can build; "
                            "pass a sample (--sample file.pt|.json, sample= in the API)")
    config = _safe_attr(source_module, "config") or _find_config(model)
    example: dict[str, torch.Tensor] = {}
    for name in names:
        tensor = _make(name, config, trainer, source_module)
        if tensor is not None:
            example[name] = tensor
    wanted = _required(view) if source_module is model else []
    unknown = [n for n in wanted if n not in example]
    if unknown or not example:
        return Inputs(None, f"cannot build {', '.join(unknown) or 'any input'} for "
                            f"{type(source_module).__name__}.forward; pass a sample (--sample file.pt|.json)")
    where = "its forward" if source_module is model else f"the inner {type(source_module).__name__}"
    return Inputs(example, f"synthetic: {', '.join(f'{k}{list(v.shape)}' for k, v in example.items())} from {where}")


def _safe_attr(module: nn.Module, name: str) -> Any:
    """getattr that survives a user's __getattr__ that recurses or raises (other rules report those)."""
    try:
        return getattr(module, name, None)
    except Exception:
        return None


def _required(view: ForwardView) -> list[str]:
    if view.bound is None:
        return []
    return [n for n, p in view.bound.parameters.items()
            if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _declaring_module(subject: Subject, view: ForwardView) -> tuple[nn.Module | None, list[str]]:
    """The module whose forward says what the inputs are: the model, or (for forward(**kwargs)) its LM."""
    model = subject.instance
    named = view.keyword_params
    if named:
        labels = [n for n in named if "label" in n]
        info = subject.member("main_input_name")
        main = info.value if info.present else None
        keep = [n for n in named if n in _required(view) or n in ("attention_mask",) or n == main]
        return model, list(dict.fromkeys(keep + labels[:1]))
    from transformers import PreTrainedModel

    for _, module in subject.pretrained_submodules():
        if isinstance(module, PreTrainedModel) and getattr(module, "main_input_name", "") == "input_ids":
            forward_labels = label_names(type(module))
            return module, ["input_ids", "attention_mask"] + forward_labels[:1]
    return None, []


def _find_config(model: nn.Module) -> Any:
    for module in model.modules():
        config = module.__dict__.get("config")
        if config is not None and hasattr(config, "vocab_size"):
            return config
    return None


def _size(config: Any, *names: str, default: int) -> int:
    for name in names:
        value = getattr(config, name, None) if config is not None else None
        if isinstance(value, int) and value > 0:
            return value
    return default


def _make(name: str, config: Any, trainer: str, module: nn.Module) -> torch.Tensor | None:
    vocab = _size(config, "vocab_size", default=100)
    positions = _size(config, "n_positions", "max_position_embeddings", default=SEQ_LEN)
    length = min(SEQ_LEN, positions)
    generator = torch.Generator().manual_seed(0)
    if name in _TEXT_INPUTS or name == "decoder_input_ids":
        return torch.randint(3, vocab, (length,), generator=generator)
    if name in ("attention_mask", "decoder_attention_mask"):
        return torch.ones(length, dtype=torch.long)
    if "label" in name:
        if "SequenceClassification" in type(module).__name__:
            return torch.tensor(0)
        return torch.randint(3, vocab, (length,), generator=generator)
    if name == "input_features":
        mels = _size(config, "num_mel_bins", default=80)
        frames = 2 * _size(config, "max_source_positions", default=length)
        return torch.randn(mels, frames, generator=generator)
    if name == "pixel_values":
        size = _size(config, "image_size", default=32)
        return torch.randn(_size(config, "num_channels", default=3), size, size, generator=generator)
    return None
