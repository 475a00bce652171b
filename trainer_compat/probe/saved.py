"""What ``save_model`` wrote, read back: every tensor of the model (bitwise), or every trained adapter weight."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer_compat.probe.state import bitwise_equal


def save_and_reload(trainer: Any, model: nn.Module, target: Path, seen: Any) -> None:
    """``Trainer.save_model`` into ``target``, then compare what was written with the model it came from."""
    trainer.save_model(str(target))
    seen.saved_files = sorted(p.name for p in target.iterdir())
    if any(name.startswith("adapter_model") for name in seen.saved_files):
        seen.adapter_only = True
        seen.reload_missing = _trained_outside_adapter(model, target)
        return
    loaded = _read_weights(target)
    if loaded is None:
        return
    current = _saved_view(model)
    seen.reload_missing = sorted(set(current) - set(loaded))
    seen.reload_mismatched = sorted(k for k in set(current) & set(loaded)
                                    if not bitwise_equal(loaded[k].to(current[k].device), current[k]))


def _saved_view(model: nn.Module) -> dict[str, torch.Tensor]:
    from transformers import PreTrainedModel

    state = nn.Module.state_dict(model)  # every tensor, whatever a state_dict override leaves out
    if isinstance(model, PreTrainedModel):  # save_pretrained drops tied duplicates by design
        tied = _tied_keys(model)
        state = {k: v for k, v in state.items() if k not in tied}
    return state


def _tied_keys(model: nn.Module) -> set[str]:
    pointers: dict[int, str] = {}
    tied = set()
    for key, tensor in model.state_dict().items():
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in pointers:
            tied.add(key)
        else:
            pointers[pointer] = key
    return tied


def _read_weights(directory: Path) -> dict[str, torch.Tensor] | None:
    files = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("*.bin"))
    files = [f for f in files if not f.name.startswith("training_args")]
    if not files or any(f.name.startswith("adapter_") for f in files):
        return None
    loaded: dict[str, torch.Tensor] = {}
    for f in files:
        if f.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded.update(load_file(str(f)))
        else:
            loaded.update(torch.load(f, map_location="cpu", weights_only=True))
    return loaded




def _trained_outside_adapter(model: nn.Module, directory: Path) -> list[str]:
    """Trainable parameters of a PeftModel that the adapter checkpoint does not hold (lost at save)."""
    files = sorted(directory.glob("adapter_model.safetensors")) or sorted(directory.glob("adapter_model.bin"))
    if not files:
        return []
    if files[0].suffix == ".safetensors":
        from safetensors.torch import load_file

        saved = set(load_file(str(files[0])))
    else:
        saved = set(torch.load(files[0], map_location="cpu", weights_only=True))
    adapters = set(getattr(model, "peft_config", {}) or {})
    lost = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = name
        for adapter in adapters:
            key = key.replace(f".modules_to_save.{adapter}.", ".").replace(f".{adapter}.", ".")
        if key not in saved and key.replace(".base_layer", "") not in saved:
            lost.append(name)
    return lost
