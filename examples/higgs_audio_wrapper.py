"""The seed case: a multimodal wrapper in the style of HiggsAudioModelWrapper (tiny, built from configs).

`HiggsAudioModelWrapper` holds an audio encoder and a causal LM with tied embeddings, and exposes only
`forward(**kwargs)`, as the public training scripts for Higgs Audio v2 did. `HiggsAudioModelWrapperWithShim`
adds the hand-written checkpointing shim from a public fix note: it tries the inner model, logs a warning on
any exception and falls back to `config.use_cache = False`.

    trainer-compat check examples/higgs_audio_wrapper.py:HiggsAudioModelWrapper --args examples/train_args.json
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

logger = logging.getLogger(__name__)


def tiny_audio_encoder() -> WhisperEncoder:
    """A 1-layer Whisper encoder (80 mel bins, width 32), standing in for Higgs Audio's audio tower."""
    return WhisperEncoder(WhisperConfig(num_mel_bins=80, d_model=32, encoder_layers=1, encoder_attention_heads=2,
                                        encoder_ffn_dim=64, max_source_positions=16, decoder_layers=1,
                                        decoder_attention_heads=2, decoder_ffn_dim=64, vocab_size=100))


def tiny_causal_lm() -> GPT2LMHeadModel:
    """A 2-layer GPT-2 with tied input/output embeddings, standing in for the Higgs Audio LLM."""
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=64,
                                      bos_token_id=0, eos_token_id=0, pad_token_id=0, tie_word_embeddings=True))


class HiggsAudioModelWrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.audio_tower = tiny_audio_encoder()
        self.audio_proj = nn.Linear(32, 32)
        self.model = tiny_causal_lm()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, **kwargs):
        audio_features = kwargs.pop("audio_features", None)
        if audio_features is not None:
            audio = self.audio_proj(self.audio_tower(audio_features).last_hidden_state).mean(dim=1, keepdim=True)
            embeds = self.model.get_input_embeddings()(kwargs.pop("input_ids"))
            kwargs["inputs_embeds"] = embeds + audio
        return self.model(**kwargs)


class HiggsAudioModelWrapperWithShim(HiggsAudioModelWrapper):
    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
        try:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)
            logger.info("Gradient checkpointing enabled on the inner model")
        except Exception as exc:
            logger.warning("Could not enable gradient checkpointing on the inner model: %s", exc)
            self.model.config.use_cache = False
            logger.info("Gradient checkpointing enabled via config (cache disabled)")
