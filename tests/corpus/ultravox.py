"""Ultravox: a Whisper audio encoder, a frame-stacking projector and a LLaMA, trained by UltraTrainer.

Source: fixie-ai/ultravox: ultravox/model/ultravox_model.py, class ``UltravoxModel`` (commit
03ac67e5ba04e36d5b21a9312662e0f3da07d834; ``forward``, ``_process_audio_input``, ``_insert_tokens``), and
ultravox/training/trainer.py, class ``UltraTrainer(transformers.Seq2SeqTrainer)`` (commit
37e0625dfc2e66c5c53014ded848eb336597096e).

Kept: ``UltravoxModel(transformers.LlamaPreTrainedModel)`` holding ``audio_tower``, ``adapter`` and
``language_model``, with the embedding/decoder delegations and ``tie_weights``; ``forward(input_ids, attention_mask,
inputs_embeds=None, labels=None, audio_values=None, audio_len=None, audio_start_idx=None, transcript_ids=None,
transcript_len=None, past_key_values=None, **kwargs)`` that embeds the text, runs the audio tower, stacks and projects
its frames, inserts them (and -100 labels) at ``audio_start_idx``, calls ``language_model.forward(inputs_embeds=...,
**kwargs)`` and, in training, rebuilds ``lm_output.loss`` as the weighted sum of the configured losses (only the
cross-entropy by default); the audio tower and the LLM frozen (LoRA rank 0 freezes them in the repository: only the
adapter trains); UltraTrainer's own train/eval dataloaders (they use the collator directly, so
``remove_unused_columns`` never applies to them).
Simplified: tiny Whisper-encoder and LLaMA configs built in code (16 mel frames, the length a tiny Whisper encoder
takes); the adapter is the stacking projector (stack 2, RMSNorm, Linear, SwiGLU, Linear, RMSNorm) without the
CFormer variant; no KL-distillation branch (``LossConfig`` keeps only ``Response_CE``), no wandb loss logging, no
``generate``; the collator (``DataCollatorForSeq2SeqWithAudio`` in the repository) pads ids/labels and stacks audio.

Real Trainer (5.x): trains, checkpoints, saves and evaluates with eval_loss.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers
from torch.utils import data

from tests.corpus._tiny import ROWS, ids, llama_config

AUDIO_FRAMES = 16
MEL = 8


class LossFunction(str, enum.Enum):
    Response_CE = "ce"


@dataclass
class LossConfig:
    loss_weights: Dict[LossFunction, float] = field(default_factory=lambda: {LossFunction.Response_CE: 1.0})
    logging_steps: Optional[int] = None

    @property
    def contains_kl_loss(self):
        return False


class UltravoxConfig(transformers.PretrainedConfig):
    model_type = "ultravox"

    def __init__(self, audio_config=None, text_config=None, stack_factor=2, **kwargs):
        self.audio_config = audio_config
        self.text_config = text_config
        self.stack_factor = stack_factor
        if text_config is not None:
            self.vocab_size = text_config.vocab_size
            self.hidden_size = text_config.hidden_size
            self.initializer_range = text_config.initializer_range
        super().__init__(**kwargs)


class StackAudioFrames(nn.Module):
    """Stack the audio embedding frames to reduce the sequence length by a factor of `stack_factor`."""

    def __init__(self, stack_factor: int = 8):
        super().__init__()
        self.stack_factor = stack_factor

    def forward(self, audio_embeds: torch.Tensor) -> torch.Tensor:
        B, T, C = audio_embeds.shape
        T_pad = (T + self.stack_factor - 1) // self.stack_factor * self.stack_factor
        audio_embeds = F.pad(audio_embeds, (0, 0, 0, T_pad - T))
        B, T, C = audio_embeds.shape
        audio_embeds = audio_embeds.view(B, T // self.stack_factor, C * self.stack_factor)
        return audio_embeds


class RMSNorm(transformers.models.llama.modeling_llama.LlamaRMSNorm):
    def __init__(self, hidden_size: int, init: float = 1, eps: float = 1e-6):
        super().__init__(hidden_size=hidden_size, eps=eps)
        self.weight.data.fill_(init)


class SwiGLU(nn.Module):
    def forward(self, x):
        x, gate = x.chunk(2, dim=-1)
        return F.silu(gate) * x


class UltravoxStackingAdapter(nn.Module):
    def __init__(self, config: UltravoxConfig):
        super().__init__()
        self.stack_factor = config.stack_factor
        self._pad_and_stack = StackAudioFrames(config.stack_factor)
        dim_in = config.audio_config.d_model * config.stack_factor
        self.ln_pre = RMSNorm(dim_in)
        self.linear_1 = nn.Linear(dim_in, config.hidden_size * 2, bias=False)
        self.act = SwiGLU()
        self.linear_2 = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.ln_post = RMSNorm(config.hidden_size)

    def forward(self, audio_features, audio_feature_len, transcript_len=None):
        hidden_states = self._pad_and_stack(audio_features)
        hidden_states = self.ln_pre(hidden_states)
        hidden_states = self.linear_1(hidden_states)
        hidden_states = self.act(hidden_states)
        hidden_states = self.linear_2(hidden_states)
        hidden_states = self.ln_post(hidden_states)
        num_audio_tokens = (audio_feature_len + self.stack_factor - 1) // self.stack_factor
        return hidden_states, num_audio_tokens, None


class UltravoxModel(transformers.LlamaPreTrainedModel):
    config_class = UltravoxConfig
    _no_split_modules = ["Wav2Vec2Model", "WhisperEncoder", "LlamaDecoderLayer"]
    _keys_to_ignore_on_load_unexpected = ["audio_tower.*", "language_model.*"]
    _keys_to_ignore_on_load_missing = ["audio_tower.*"]

    def __init__(self, config: UltravoxConfig):
        super().__init__(config)

        self.keep_params: set[str] = set()
        self.vocab_size = config.vocab_size

        self.audio_tower = transformers.models.whisper.modeling_whisper.WhisperEncoder(config.audio_config)
        self.adapter = UltravoxStackingAdapter(config)
        self.language_model = transformers.LlamaForCausalLM(config.text_config)

        self.loss_config = LossConfig()
        self.accumulated_losses: Dict[str, float] = defaultdict(float)
        self.step_counter = 0

        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, new_embeddings):
        self.language_model.set_output_embeddings(new_embeddings)

    def set_decoder(self, decoder):
        self.language_model.set_decoder(decoder)

    def get_decoder(self):
        return self.language_model.get_decoder()

    def tie_weights(self, *args, **kwargs):
        return self.language_model.tie_weights(*args, **kwargs)

    def _insert_tokens(self, inputs_embeds, attention_mask, insert_idx, insert_embeds, insert_len, labels=None,
                       position_ids=None, cache_position=None):
        batch_size, seq_len, hidden_dim = inputs_embeds.shape
        input_offset = 0
        attention_mask = attention_mask[:, input_offset:]

        num_tokens = attention_mask.sum(dim=1).long()
        new_num_tokens = num_tokens + insert_len
        new_seq_len = int(new_num_tokens.max().item())

        new_inputs_embeds = torch.zeros((batch_size, new_seq_len, hidden_dim), device=inputs_embeds.device,
                                        dtype=inputs_embeds.dtype)
        new_attention_mask = torch.zeros((batch_size, new_seq_len), device=attention_mask.device,
                                         dtype=attention_mask.dtype)
        new_labels = (torch.full((batch_size, new_seq_len), fill_value=-100, device=labels.device,
                                 dtype=labels.dtype) if labels is not None else None)

        for i in range(batch_size):
            idx_i: int = int(insert_idx[i].item()) - input_offset
            insert_len_i: int = int(insert_len[i].item())
            orig_len_i: int = int(num_tokens[i].item())
            new_len_i: int = int(new_num_tokens[i].item())

            new_inputs_embeds[i, :idx_i] = inputs_embeds[i, :idx_i]
            if insert_len_i > 0:
                new_inputs_embeds[i, idx_i: idx_i + insert_len_i] = insert_embeds[i, :insert_len_i]
            new_inputs_embeds[i, idx_i + insert_len_i: new_len_i] = inputs_embeds[i, idx_i:orig_len_i]

            new_attention_mask[i, :idx_i] = attention_mask[i, :idx_i]
            if insert_len_i > 0:
                new_attention_mask[i, idx_i: idx_i + insert_len_i] = 1
            new_attention_mask[i, idx_i + insert_len_i: new_len_i] = attention_mask[i, idx_i:orig_len_i]

            if labels is not None and new_labels is not None:
                new_labels[i, :idx_i] = labels[i, :idx_i]
                if insert_len_i > 0:
                    new_labels[i, idx_i: idx_i + insert_len_i] = -100
                new_labels[i, idx_i + insert_len_i: new_len_i] = labels[i, idx_i:orig_len_i]

        return new_inputs_embeds, new_attention_mask, new_labels, position_ids, cache_position

    def _process_audio_input(self, inputs_embeds, attention_mask, audio_values, audio_len=None,
                             audio_start_idx=None, transcript_len=None, labels=None, position_ids=None,
                             cache_position=None):
        if audio_values is None or audio_len is None or audio_start_idx is None:
            raise ValueError("audio_values, audio_len, and audio_start_idx must be provided for audio input processing")
        if not (len(audio_start_idx) == len(audio_len) == len(audio_values)):
            raise ValueError("audio_start_idx, audio_len, and audio_values must have the same batch size")
        if inputs_embeds.shape[0] != audio_values.shape[0]:
            raise ValueError(f"Batch size mismatch: inputs_embeds has shape {inputs_embeds.shape}, but audio_values "
                             f"has shape {audio_values.shape}")
        if attention_mask.shape != inputs_embeds.shape[:2]:
            raise ValueError(f"Attention mask shape {attention_mask.shape} does not match inputs_embeds shape "
                             f"{inputs_embeds.shape[:2]}")
        if labels is not None and labels.shape != inputs_embeds.shape[:2]:
            raise ValueError(f"Labels shape {labels.shape} does not match inputs_embeds shape "
                             f"{inputs_embeds.shape[:2]}")

        audio_tower_output = self.audio_tower(audio_values).last_hidden_state
        audio_tower_output = audio_tower_output.to(self.language_model.dtype)

        audio_feature_len = self.audio_tower._get_feat_extract_output_lengths(audio_len)

        audio_embeds, num_audio_tokens, num_pred_audio_tokens = self.adapter(audio_tower_output, audio_feature_len,
                                                                             transcript_len)

        (new_inputs_embeds, new_attention_mask, new_labels, new_position_ids,
         new_cache_position) = self._insert_tokens(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                                   insert_idx=audio_start_idx, insert_embeds=audio_embeds,
                                                   insert_len=num_audio_tokens, labels=labels,
                                                   position_ids=position_ids, cache_position=cache_position)
        return (new_inputs_embeds, new_attention_mask, num_audio_tokens, num_pred_audio_tokens, new_labels,
                new_position_ids, new_cache_position)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        inputs_embeds: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        audio_values: Optional[torch.FloatTensor] = None,
        audio_len: Optional[torch.Tensor] = None,
        audio_start_idx: Optional[torch.Tensor] = None,
        transcript_ids: Optional[torch.Tensor] = None,
        transcript_len: Optional[torch.Tensor] = None,
        past_key_values: Optional[Any] = None,
        **kwargs,
    ):
        if inputs_embeds is None:
            assert input_ids is not None, "You have to specify either input_ids or inputs_embeds"
            inputs_embeds = self.get_input_embeddings()(input_ids)

        orig_inputs_embeds = inputs_embeds
        orig_attention_mask = attention_mask
        orig_labels = labels
        orig_position_ids = kwargs.get("position_ids", None)
        orig_cache_position = kwargs.get("cache_position", None)

        if audio_values is not None:
            (inputs_embeds, attention_mask, num_audio_tokens, num_pred_audio_tokens, labels, position_ids,
             cache_position) = self._process_audio_input(inputs_embeds=orig_inputs_embeds,
                                                          attention_mask=orig_attention_mask,
                                                          audio_values=audio_values, audio_len=audio_len,
                                                          audio_start_idx=audio_start_idx,
                                                          transcript_len=transcript_len, labels=orig_labels,
                                                          position_ids=orig_position_ids,
                                                          cache_position=orig_cache_position)
            kwargs["position_ids"] = position_ids
            kwargs["cache_position"] = cache_position
        else:
            num_audio_tokens = None

        lm_output = self.language_model.forward(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                                labels=labels, past_key_values=past_key_values, **kwargs)
        if self.training:
            losses: Dict[LossFunction, torch.Tensor] = {}
            for loss_fn, _ in self.loss_config.loss_weights.items():
                if loss_fn == LossFunction.Response_CE:
                    losses[loss_fn] = lm_output.loss
                else:
                    raise ValueError(f"Unsupported loss function: {loss_fn}")

            total_loss = sum(weight * losses[loss_fn] for loss_fn, weight in self.loss_config.loss_weights.items())
            assert isinstance(total_loss, torch.Tensor), f"total_loss is not a tensor: {total_loss}"
            lm_output.loss = total_loss
        return lm_output


class UltraTrainer(transformers.Seq2SeqTrainer):
    _eval_dataloaders: dict[str, data.DataLoader]

    def get_train_dataloader(self) -> data.DataLoader:
        if self.train_dataset is None:
            raise ValueError("Trainer: training requires a train_dataset.")

        train_dataset = self.train_dataset
        data_collator = self.data_collator

        dataloader_params = {
            "batch_size": self._train_batch_size,
            "collate_fn": data_collator,
            "num_workers": self.args.dataloader_num_workers,
            "pin_memory": self.args.dataloader_pin_memory,
            "persistent_workers": self.args.dataloader_persistent_workers,
            "drop_last": self.args.dataloader_drop_last,
        }

        if not isinstance(train_dataset, torch.utils.data.IterableDataset):
            dataloader_params["sampler"] = self._get_train_sampler()
            dataloader_params["prefetch_factor"] = self.args.dataloader_prefetch_factor

        return self.accelerator.prepare(data.DataLoader(train_dataset, **dataloader_params))

    def get_eval_dataloader(self, eval_dataset=None) -> data.DataLoader:
        if eval_dataset is None and self.eval_dataset is None:
            raise ValueError("Trainer: evaluation requires an eval_dataset.")

        dataloader_key = eval_dataset if isinstance(eval_dataset, str) else "eval"
        if (hasattr(self, "_eval_dataloaders") and dataloader_key in self._eval_dataloaders
                and self.args.dataloader_persistent_workers):
            return self.accelerator.prepare(self._eval_dataloaders[dataloader_key])

        eval_dataset = (self.eval_dataset[eval_dataset] if isinstance(eval_dataset, str)
                        else eval_dataset if eval_dataset is not None else self.eval_dataset)
        data_collator = self.data_collator

        dataloader_params = {
            "batch_size": self.args.eval_batch_size,
            "collate_fn": data_collator,
            "num_workers": self.args.dataloader_num_workers,
            "pin_memory": self.args.dataloader_pin_memory,
            "persistent_workers": self.args.dataloader_persistent_workers,
            "drop_last": self.args.dataloader_drop_last,
        }

        if not isinstance(eval_dataset, torch.utils.data.IterableDataset):
            dataloader_params["sampler"] = self._get_eval_sampler(eval_dataset)
            dataloader_params["prefetch_factor"] = self.args.dataloader_prefetch_factor

        eval_dataloader = data.DataLoader(eval_dataset, **dataloader_params)
        if self.args.dataloader_persistent_workers:
            if hasattr(self, "_eval_dataloaders"):
                self._eval_dataloaders[dataloader_key] = eval_dataloader
            else:
                self._eval_dataloaders = {dataloader_key: eval_dataloader}

        return self.accelerator.prepare(eval_dataloader)


@dataclass
class DataCollatorForSeq2SeqWithAudio:
    pad_token_id: int = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        batch = {
            "input_ids": torch.stack([F.pad(f["input_ids"], (0, length - len(f["input_ids"])),
                                            value=self.pad_token_id) for f in features]),
            "attention_mask": torch.stack([F.pad(f["attention_mask"], (0, length - len(f["attention_mask"])))
                                           for f in features]),
            "labels": torch.stack([F.pad(f["labels"], (0, length - len(f["labels"])), value=-100) for f in features]),
            "audio_values": torch.stack([f["audio_values"] for f in features]),
            "audio_len": torch.tensor([f["audio_len"] for f in features]),
            "audio_start_idx": torch.tensor([f["audio_start_idx"] for f in features]),
        }
        return batch


def Model() -> nn.Module:
    audio_config = transformers.WhisperConfig(d_model=16, encoder_layers=1, encoder_attention_heads=2,
                                              encoder_ffn_dim=32, num_mel_bins=MEL,
                                              max_source_positions=AUDIO_FRAMES // 2, vocab_size=100)
    config = UltravoxConfig(audio_config=audio_config, text_config=llama_config(), stack_factor=2)
    model = UltravoxModel(config)
    # text_model_lora_config / audio_model_lora_config with r=0: both frozen, only the adapter trains
    model.audio_tower.requires_grad_(False)
    model.language_model.requires_grad_(False)
    return model


def make_data() -> list[dict]:
    """A transcription sample: "<|begin|> Transcribe: <audio> answer" ids, labels on the answer, 16 mel frames."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(ROWS):
        prompt = torch.cat([torch.tensor([1]), ids(g, 3)])
        answer = torch.cat([ids(g, 3 + i % 2), torch.tensor([2])])
        input_ids = torch.cat([prompt, answer])
        labels = torch.cat([torch.full_like(prompt, -100), answer])
        rows.append({"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels,
                     "audio_values": torch.randn(MEL, AUDIO_FRAMES, generator=g), "audio_len": AUDIO_FRAMES,
                     "audio_start_idx": len(prompt)})
    return rows


collator = DataCollatorForSeq2SeqWithAudio()
TRAINER = UltraTrainer
KIND = "seq2seq"
EXPECTED = {"basic": "ok", "checkpointing": "ok", "save": "ok", "eval": "ok"}
