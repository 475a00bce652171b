"""Synthesize one example that the model would really get, from what the wrapper and its HF models declare.

Which inputs: the forward's required parameters, ``input_ids`` / the inner models' ``main_input_name`` (even
when the wrapper's parameter defaults to None), the attention mask, and the first label parameter. Token ids
avoid the config's special tokens; pixel values and audio features take the inner config's sizes; labels
follow the head (a class index for sequence classification, per-token ids for language modelling), else the
shape of what a label-free forward returns (``labels_from_output``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainer_compat.signature import ForwardView, label_names
from trainer_compat.subject import Subject

SEQ_LEN = 8
_TEXT = ("input_ids", "decoder_input_ids")
_MASKS = ("attention_mask", "decoder_attention_mask")
_MEDIA = ("pixel_values", "input_features", "input_values")
_GENERATIVE = ("CausalLM", "ConditionalGeneration", "LMHead", "MaskedLM", "Seq2SeqLM", "ForPreTraining")


@dataclass
class ExampleBuilder:
    module: nn.Module  # the module whose forward declares the inputs
    names: list[str]
    required: list[str]
    configs: list[Any] = field(default_factory=list)  # configs of the model and its HF models, outermost first
    label_head: str = "from-output"  # "class", "regression", "multilabel", "token", "token-class", "from-output"
    where: str = "its forward"

    @classmethod
    def for_model(cls, model: nn.Module, subject: Subject, view: ForwardView, trainer: str) -> ExampleBuilder | None:
        inner = _pretrained(model, subject)
        configs = [c for c in (_config(m) for m in [model, *inner]) if c is not None]
        named = view.keyword_params
        if named:
            mains = {_safe(m, "main_input_name") for m in [model, *inner]} | {"input_ids"}
            required = _required(view)
            labels = [n for n in named if "label" in n][:1]
            wanted = [n for n in named if n in required or n in mains or n in _MASKS[:1]]
            names = list(dict.fromkeys(wanted + labels))
            head = _head_kind(model) if subject.is_pretrained else "from-output"
            return cls(model, names, required, configs, head)
        for module in inner:
            if _safe(module, "main_input_name") == "input_ids":
                names = ["input_ids", "attention_mask", *label_names(type(module))[:1]]
                return cls(module, names, [], [_config(module), *configs], _head_kind(module),
                           f"the inner {type(module).__name__}")
        return None

    @property
    def label_note(self) -> str | None:
        return self.label_head if any("label" in n for n in self.names) else None

    def build(self) -> tuple[dict[str, torch.Tensor], list[str]]:
        """The example, and the required inputs it could not build."""
        generator = torch.Generator().manual_seed(0)
        length = min(SEQ_LEN, self._int("n_positions", "max_position_embeddings", default=SEQ_LEN))
        example: dict[str, torch.Tensor] = {}
        for name in self.names:
            tensor = self._make(name, length, generator)
            if tensor is not None:
                example[name] = tensor
        return example, [n for n in self.required if n not in example]

    def _make(self, name: str, length: int, generator: torch.Generator) -> torch.Tensor | None:
        if name in _TEXT:
            return self._ids(length, generator)
        if name in _MASKS:
            return torch.ones(length, dtype=torch.long)
        if "label" in name:
            return self._label(length, generator)
        return self._signal(name, length, generator)

    def _signal(self, name: str, length: int, generator: torch.Generator) -> torch.Tensor | None:
        """An image, audio-feature or waveform input sized from the config; None for a name it cannot build."""
        if name == "pixel_values":
            size = self._int("image_size", default=32, sub="vision_config")
            return torch.randn(self._int("num_channels", default=3, sub="vision_config"), size, size,
                               generator=generator)
        if name == "input_features":
            frames = 2 * self._int("max_source_positions", default=length, sub="audio_config")
            return torch.randn(self._int("num_mel_bins", default=80, sub="audio_config"), frames, generator=generator)
        if name == "input_values":
            return torch.randn(1600, generator=generator)
        return None

    def _ids(self, length: int, generator: torch.Generator) -> torch.Tensor:
        vocab = self._int("vocab_size", default=100, sub="text_config")
        special = _special_ids(self.configs)
        allowed = [i for i in range(min(vocab, 4096)) if i not in special] or [0]
        picks = torch.randint(0, len(allowed), (length,), generator=generator)
        return torch.tensor([allowed[int(i)] for i in picks], dtype=torch.long)

    def _label(self, length: int, generator: torch.Generator) -> torch.Tensor:
        labels = self._int("num_labels", default=2)
        if self.label_head == "class":
            return torch.tensor(0)
        if self.label_head == "regression":
            return torch.tensor(0.5)
        if self.label_head == "multilabel":
            return torch.zeros(labels)
        if self.label_head == "token-class":
            return torch.randint(0, labels, (length,), generator=generator)
        return self._ids(length, generator)  # token labels; "from-output" replaces them when it can

    def _int(self, *names: str, default: int, sub: str | None = None) -> int:
        for config in self.configs:
            for source in (getattr(config, sub, None) if sub else None, config):
                for name in names:
                    value = getattr(source, name, None) if source is not None else None
                    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                        return value
        return default


def _safe(module: nn.Module, name: str) -> Any:
    """getattr that survives a user's __getattr__ that recurses or raises (other rules report those)."""
    try:
        return getattr(module, name, None)
    except Exception:
        return None


def _pretrained(model: nn.Module, subject: Subject) -> list[nn.Module]:
    from transformers import PreTrainedModel

    inner = [m for _, m in subject.pretrained_submodules()]
    return [m for m in inner if isinstance(m, PreTrainedModel) and m is not model]


def _config(module: nn.Module) -> Any:
    try:
        config = module.__dict__.get("config")
    except Exception:
        return None
    return config if config is not None and not isinstance(config, Mapping) else None


def _required(view: ForwardView) -> list[str]:
    if view.bound is None:
        return []
    return [n for n, p in view.bound.parameters.items()
            if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _head_kind(module: nn.Module) -> str:
    name = type(module).__name__
    config = _config(module)
    if "SequenceClassification" in name:
        problem = getattr(config, "problem_type", None)
        if problem == "multi_label_classification":
            return "multilabel"
        if problem == "regression" or getattr(config, "num_labels", 2) == 1:
            return "regression"
        return "class"
    if "TokenClassification" in name:
        return "token-class"
    return "token" if any(part in name for part in _GENERATIVE) else "from-output"


def _special_ids(configs: list[Any]) -> set[int]:
    found: set[int] = {0, 1, 2}
    for config in configs:
        for source in (config, getattr(config, "text_config", None)):
            for key, value in (vars(source).items() if source is not None else ()):
                if ("token_id" in key or "token_index" in key) and isinstance(value, int):
                    found.add(value)
                elif "token_id" in key and isinstance(value, (list, tuple)):
                    found.update(v for v in value if isinstance(v, int))
    return found


def labels_from_output(model: nn.Module, example: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
    """Replace the provisional label by one shaped like the logits of a label-free forward (batch of 2)."""
    label = next((k for k in example if "label" in k), None)
    if label is None:
        return None
    free = {k: torch.stack([v, v]) for k, v in example.items() if k != label}
    try:
        with torch.no_grad():
            output = model(**free)
    except Exception:
        return None
    logits = _logits(output)
    if logits is None or logits.dim() == 0 or logits.shape[0] != 2:
        return None
    shaped = _label_like(logits, example)
    return None if shaped is None else {**example, label: shaped}


def _logits(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        value = output.get("logits")
        if isinstance(value, torch.Tensor):
            return value
        output = tuple(output.values())
    if isinstance(output, (tuple, list)):
        return next((v for v in output if isinstance(v, torch.Tensor) and v.dim() > 0), None)
    return None


def _label_like(logits: torch.Tensor, example: dict[str, torch.Tensor]) -> torch.Tensor | None:
    ids = example.get("input_ids")
    length = ids.shape[-1] if ids is not None else None
    if logits.dim() == 3 and logits.shape[1] == length:
        return torch.randint(0, logits.shape[-1], (length,), generator=torch.Generator().manual_seed(0))
    if logits.dim() == 2 and logits.shape[1] > 1:
        return torch.tensor(0)
    if logits.dim() == 1 or (logits.dim() == 2 and logits.shape[1] == 1):
        return torch.tensor(0.5)
    return None
