"""Tiny real models, built from configs in code (no download), for rule examples, tests and docs."""

from __future__ import annotations

from typing import Any


def tiny_causal_lm(tie: bool = True, **overrides: Any) -> Any:
    """A 2-layer GPT-2 (vocab 100, width 32); ``tie`` ties lm_head to the input embeddings."""
    from transformers import GPT2Config, GPT2LMHeadModel

    fields: dict[str, Any] = dict(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=64,
                                  bos_token_id=0, eos_token_id=0, pad_token_id=0, tie_word_embeddings=tie)
    fields.update(overrides)
    return GPT2LMHeadModel(GPT2Config(**fields))


def tiny_seq2seq(**overrides: Any) -> Any:
    """A 1+1-layer T5 (vocab 100, width 32)."""
    from transformers import T5Config, T5ForConditionalGeneration

    fields: dict[str, Any] = dict(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1,
                                  num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    fields.update(overrides)
    return T5ForConditionalGeneration(T5Config(**fields))


def tiny_audio_encoder() -> Any:
    """A 1-layer Whisper encoder (80 mel bins, width 32): a PreTrainedModel that supports checkpointing."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config = WhisperConfig(num_mel_bins=80, d_model=32, encoder_layers=1, encoder_attention_heads=2,
                           encoder_ffn_dim=64, max_source_positions=16, decoder_layers=1,
                           decoder_attention_heads=2, decoder_ffn_dim=64, vocab_size=100)
    return WhisperEncoder(config)


def tiny_encoder(**overrides: Any) -> Any:
    """A 2-layer BERT encoder (vocab 100, width 32), as under a classification or retrieval head."""
    from transformers import BertConfig, BertModel

    fields: dict[str, Any] = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64, pad_token_id=0)
    fields.update(overrides)
    return BertModel(BertConfig(**fields))
