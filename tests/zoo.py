"""The agreement zoo: small models, working and broken, that the real Trainer trains in tests/test_agreement.py.

Every model class lives in this file (a real source file), so the rules that read source (shims, forwards,
returns) see them exactly as they would see a user's code. Each entry is a zero-argument factory plus the
trainer kind it is for; ``needs`` names optional packages (the entry is skipped where one is missing).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from trainer_compat.targets import load_target
from trainer_compat.testing import tiny_causal_lm, tiny_seq2seq

logger = logging.getLogger(__name__)
VOCAB = 100
HIGGS = Path(__file__).resolve().parent.parent / "examples" / "higgs_audio_wrapper.py"


# --- wrappers around a causal LM, each storing it under a different name -----------------------------------


class ExplicitWrapper(nn.Module):
    """Inner model as `model`, named forward inputs, no shims: fine until checkpointing is switched on."""

    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class BackboneDelegating(nn.Module):
    """Inner model as `backbone`; checkpointing methods delegate with *args, **kwargs."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = tiny_causal_lm(tie=False)

    def gradient_checkpointing_enable(self, *args, **kwargs):
        return self.backbone.gradient_checkpointing_enable(*args, **kwargs)

    def gradient_checkpointing_disable(self, *args, **kwargs):
        return self.backbone.gradient_checkpointing_disable(*args, **kwargs)

    def activation_checkpointing_enable(self, *args, **kwargs):
        return self.backbone.activation_checkpointing_enable(*args, **kwargs)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class LmGetattr(nn.Module):
    """Inner model as `lm`, everything else reached through a correct `__getattr__`."""

    def __init__(self) -> None:
        super().__init__()
        self.lm = tiny_causal_lm(tie=False)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.lm, name)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.lm(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class RecursiveGetattr(nn.Module):
    """`__getattr__` reads `self.model`, itself served by `__getattr__`: every missing name recurses."""

    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def __getattr__(self, name):
        return getattr(self.model, name)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class KwargsForward(nn.Module):
    """`forward(**kwargs)`: names no column, so remove_unused_columns drops all of them."""

    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def forward(self, **kwargs):
        return self.model(**kwargs)


class FixedSignatureShim(nn.Module):
    """Inner model as `transformer`; the 4.x-style shim takes gradient_checkpointing_kwargs only."""

    def __init__(self) -> None:
        super().__init__()
        self.transformer = tiny_causal_lm(tie=False)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
        self.transformer.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.transformer(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class SwallowingShim(nn.Module):
    """A shim that catches every exception; here the inner call succeeds, so checkpointing is on."""

    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None, **kwargs):
        try:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)
            logger.info("Gradient checkpointing enabled")
        except Exception as exc:
            logger.warning("Could not enable gradient checkpointing: %s", exc)
            self.model.config.use_cache = False

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class SwallowingShimStaleName(nn.Module):
    """The same shim after a rename: it still calls `self.model`, which is now `self.decoder`; it fakes."""

    def __init__(self) -> None:
        super().__init__()
        self.decoder = tiny_causal_lm(tie=False)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None, **kwargs):
        try:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)
        except Exception as exc:
            logger.warning("Could not enable gradient checkpointing: %s", exc)
            self.decoder.config.use_cache = False

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.decoder(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class TiedWrapper(ExplicitWrapper):
    """Wraps a causal LM whose lm_head is tied to the input embeddings: safetensors refuses the state dict."""

    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_causal_lm(tie=True)


class DictConfig(ExplicitWrapper):
    """`config` is a plain dict."""

    def __init__(self) -> None:
        super().__init__()
        self.config = {"model_type": "custom", "vocab_size": VOCAB}


class DropsNumItems(nn.Module):
    """Takes **kwargs (so Trainer passes num_items_in_batch) but never hands them on."""

    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class DropsNumItemsOptedOut(DropsNumItems):
    """The same forward, with the documented opt-out."""

    accepts_loss_kwargs = False


class PassesLossKwargs(nn.Module):
    """Takes **kwargs and passes them on to a model that uses num_items_in_batch."""

    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs)


# --- nested wrappers -------------------------------------------------------------------------------------


class Middle(BackboneDelegating):
    pass


class NestedDelegating(nn.Module):
    """Wrapper of a wrapper; both levels delegate checkpointing."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = Middle()

    def gradient_checkpointing_enable(self, *args, **kwargs):
        return self.inner.gradient_checkpointing_enable(*args, **kwargs)

    def activation_checkpointing_enable(self, *args, **kwargs):
        return self.inner.activation_checkpointing_enable(*args, **kwargs)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class NestedOuterWithoutShims(nn.Module):
    """Wrapper of a wrapper; only the inner one has the shims."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = Middle()

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


# --- pure nn.Modules -------------------------------------------------------------------------------------


class TinyLM(nn.Module):
    """No transformers inside: embedding, two blocks, a head, and its own loss."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(16, 16), nn.GELU()) for _ in range(2))
        self.head = nn.Linear(16, VOCAB)

    def hidden(self, input_ids):
        h = self.embed(input_ids)
        for block in self.blocks:
            h = h + block(h)
        return h

    def forward(self, input_ids, attention_mask=None, labels=None):
        logits = self.head(self.hidden(input_ids))
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten()) if labels is not None else None
        return {"loss": loss, "logits": logits}


class TinyLMNoLoss(TinyLM):
    """Returns a dict without `loss`."""

    def forward(self, input_ids, attention_mask=None, labels=None):
        return {"logits": self.head(self.hidden(input_ids))}


class TinyLMCheckpointing(TinyLM):
    """Checkpoints its own blocks, switched on by a flag on the module itself."""

    def __init__(self) -> None:
        super().__init__()
        self.gradient_checkpointing = False

    def gradient_checkpointing_enable(self, *args, **kwargs):
        self.gradient_checkpointing = True

    def activation_checkpointing_enable(self, *args, **kwargs):
        self.gradient_checkpointing = True

    def hidden(self, input_ids):
        h = self.embed(input_ids)
        for block in self.blocks:
            if self.gradient_checkpointing and self.training:
                h = h + checkpoint(block, h, use_reentrant=False)
            else:
                h = h + block(h)
        return h


class TinyLMFlagOnly(TinyLM):
    """Its checkpointing method only records a flag that nothing reads."""

    def gradient_checkpointing_enable(self, *args, **kwargs):
        self.checkpointing = True

    def activation_checkpointing_enable(self, *args, **kwargs):
        self.checkpointing = True


class TinyLMFlagUnread(TinyLM):
    """Sets a `gradient_checkpointing` flag that its forward never reads."""

    def gradient_checkpointing_enable(self, *args, **kwargs):
        self.gradient_checkpointing = True

    def activation_checkpointing_enable(self, *args, **kwargs):
        self.gradient_checkpointing = True


class TinyLMNormalising(TinyLM):
    """Takes **loss_kwargs and divides its summed loss by num_items_in_batch (right on every version)."""

    def forward(self, input_ids, attention_mask=None, labels=None, **loss_kwargs):
        logits = self.head(self.hidden(input_ids))
        if labels is None:
            return {"logits": logits}
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum")
        return {"loss": loss / loss_kwargs.get("num_items_in_batch", labels.numel()), "logits": logits}


# --- seq2seq ---------------------------------------------------------------------------------------------


class Seq2SeqWrapper(nn.Module):
    """A T5 wrapper that exposes config, generate and generation_config."""

    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_seq2seq()

    @property
    def config(self):
        return self.model.config

    @property
    def generation_config(self):
        return self.model.generation_config

    @generation_config.setter
    def generation_config(self, value):
        self.model.generation_config = value

    def generate(self, *args, **kwargs):
        return self.model.generate(*args, **kwargs)

    def forward(self, input_ids, attention_mask=None, labels=None, decoder_input_ids=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                          decoder_input_ids=decoder_input_ids)


class Seq2SeqWrapperNoGenerate(nn.Module):
    """A T5 wrapper with a forward only."""

    def __init__(self) -> None:
        super().__init__()
        self.model = tiny_seq2seq()

    def forward(self, input_ids, attention_mask=None, labels=None, decoder_input_ids=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                          decoder_input_ids=decoder_input_ids)


class Seq2SeqWrapperNoGenerationConfig(Seq2SeqWrapperNoGenerate):
    """Delegates generate, but exposes no generation_config."""

    def generate(self, *args, **kwargs):
        return self.model.generate(*args, **kwargs)


class Seq2SeqGetattr(nn.Module):
    """A T5 wrapper that reaches everything but forward through `__getattr__`."""

    def __init__(self) -> None:
        super().__init__()
        self.t5 = tiny_seq2seq()

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.t5, name)

    def forward(self, input_ids, attention_mask=None, labels=None, decoder_input_ids=None):
        return self.t5(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                       decoder_input_ids=decoder_input_ids)


# --- factories -------------------------------------------------------------------------------------------


def peft_lora_gpt2() -> nn.Module:
    peft = pytest.importorskip("peft", reason="the PEFT zoo entry needs peft")  # Entry.needs skips it first
    LoraConfig, get_peft_model = peft.LoraConfig, peft.get_peft_model
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], task_type="CAUSAL_LM", fan_in_fan_out=True)
    return get_peft_model(tiny_causal_lm(tie=False), config)


def compiled_gpt2() -> nn.Module:
    return torch.compile(tiny_causal_lm(tie=True), backend="eager")


@functools.cache
def higgs_class(name: str) -> type[nn.Module]:
    return load_target(f"{HIGGS}:{name}")


def higgs(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return higgs_class(name)()

    build.__name__ = name
    return build


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable[[], nn.Module]
    trainer: str = "trainer"  # "trainer" or "seq2seq"
    needs: tuple[str, ...] = ()

    def missing(self) -> list[str]:
        return [m for m in self.needs if importlib.util.find_spec(m) is None]

    def build(self) -> nn.Module:
        return self.factory()


ZOO: tuple[Entry, ...] = (
    Entry("gpt2", tiny_causal_lm),
    Entry("t5", tiny_seq2seq, "seq2seq"),
    Entry("peft_lora_gpt2", peft_lora_gpt2, needs=("peft",)),
    Entry("compiled_gpt2", compiled_gpt2),
    Entry("explicit_wrapper", ExplicitWrapper),
    Entry("backbone_delegating", BackboneDelegating),
    Entry("lm_getattr", LmGetattr),
    Entry("recursive_getattr", RecursiveGetattr),
    Entry("kwargs_forward", KwargsForward),
    Entry("fixed_signature_shim", FixedSignatureShim),
    Entry("swallowing_shim", SwallowingShim),
    Entry("swallowing_shim_stale_name", SwallowingShimStaleName),
    Entry("tied_wrapper", TiedWrapper),
    Entry("dict_config", DictConfig),
    Entry("drops_num_items", DropsNumItems),
    Entry("drops_num_items_opted_out", DropsNumItemsOptedOut),
    Entry("passes_loss_kwargs", PassesLossKwargs),
    Entry("nested_delegating", NestedDelegating),
    Entry("nested_outer_without_shims", NestedOuterWithoutShims),
    Entry("pure_own_loss", TinyLM),
    Entry("pure_no_loss", TinyLMNoLoss),
    Entry("pure_checkpointing", TinyLMCheckpointing),
    Entry("pure_flag_only", TinyLMFlagOnly),
    Entry("pure_flag_unread", TinyLMFlagUnread),
    Entry("pure_normalising", TinyLMNormalising),
    Entry("seq2seq_wrapper", Seq2SeqWrapper, "seq2seq"),
    Entry("seq2seq_no_generate", Seq2SeqWrapperNoGenerate, "seq2seq"),
    Entry("seq2seq_no_generation_config", Seq2SeqWrapperNoGenerationConfig, "seq2seq"),
    Entry("seq2seq_getattr", Seq2SeqGetattr, "seq2seq"),
    Entry("higgs_wrapper", higgs("HiggsAudioModelWrapper")),
    Entry("higgs_wrapper_with_shim", higgs("HiggsAudioModelWrapperWithShim")),
)
