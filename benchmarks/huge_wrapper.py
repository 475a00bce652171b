"""A wrapper around a Llama-70B-shaped causal LM (80 layers, width 8192): ~70e9 parameters, 140 GB in bf16.

Built for real it would not fit this machine; ``trainer-compat check`` builds it on the meta device.

    trainer-compat check benchmarks/huge_wrapper.py:Llama70BWrapper --args '{"gradient_checkpointing": true}'
"""

from __future__ import annotations

from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

LLAMA_70B = dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                 num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, tie_word_embeddings=True)


class Llama70BWrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = LlamaForCausalLM(LlamaConfig(**LLAMA_70B))
        self.value_head = nn.Linear(8192, 1)

    def forward(self, **kwargs):
        return self.model(**kwargs)
