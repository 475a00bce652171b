"""Tiny configs and rows shared by the corpus files (the models stay in their own files)."""

from __future__ import annotations

import torch

VOCAB = 100
SEQ = 8
ROWS = 8


def llama_config(**extra):
    import transformers

    return transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                    num_key_value_heads=2, intermediate_size=32, max_position_embeddings=64,
                                    pad_token_id=0, bos_token_id=1, eos_token_id=2, **extra)


def bert_config(**extra):
    import transformers

    return transformers.BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=32, max_position_embeddings=64, pad_token_id=0, **extra)


def gpt2_config(**extra):
    import transformers

    return transformers.GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=2, n_head=2, n_positions=64,
                                   bos_token_id=1, eos_token_id=2, pad_token_id=0, **extra)


def t5_config(**extra):
    import transformers

    return transformers.T5Config(vocab_size=VOCAB, d_model=16, d_kv=8, d_ff=32, num_layers=2, num_decoder_layers=2,
                                 num_heads=2, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **extra)


def ids(generator: torch.Generator, length: int = SEQ, low: int = 5) -> torch.Tensor:
    """Token ids from ``low`` (0-4 stay free for pad/bos/eos and markers)."""
    return torch.randint(low, VOCAB, (length,), generator=generator)
