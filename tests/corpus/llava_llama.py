"""LLaVA-1.5: a CLIP vision tower, an MLP projector and a LLaMA, trained by LLaVATrainer.

Source: haotian-liu/LLaVA (commit c121f0432da27facab705978f83c4ada465e46fd): llava/model/language_model/llava_llama.py
(``LlavaConfig``, ``LlavaLlamaModel``, ``LlavaLlamaForCausalLM``), llava/model/llava_arch.py (``LlavaMetaModel``,
``LlavaMetaForCausalLM.prepare_inputs_labels_for_multimodal``), llava/model/multimodal_encoder/clip_encoder.py
(``CLIPVisionTower``), llava/model/multimodal_projector/builder.py (``build_vision_projector``), llava/train/
llava_trainer.py (``LLaVATrainer``), llava/train/train.py (``TrainingArguments``, ``DataCollatorForSupervisedDataset``).

Kept: the class hierarchy (``LlavaLlamaForCausalLM(LlamaForCausalLM, LlavaMetaForCausalLM)`` whose ``__init__``
skips LlamaForCausalLM's and builds ``LlavaLlamaModel``), the frozen vision tower under ``model.vision_tower`` with
``@torch.no_grad`` forward and the ``mlp2x_gelu`` projector under ``model.mm_projector``; ``forward(input_ids,
attention_mask, position_ids, past_key_values, inputs_embeds, labels, use_cache, output_attentions,
output_hidden_states, images, image_sizes, return_dict)`` that splices image features in at ``IMAGE_TOKEN_INDEX``
(-200) inside ``input_ids`` and calls ``LlamaForCausalLM.forward`` with ``inputs_embeds``; LLaVATrainer's
``_get_train_sampler(self)``, ``create_optimizer`` and ``_save_checkpoint``/``_save``; the collator (pads ids with
the pad id, labels with -100, attention_mask = ids != pad, stacks ``image`` into ``images``); LLaVA's
``TrainingArguments`` default ``remove_unused_columns=False``.
Simplified: tiny LLaMA and CLIP-vision configs built in code (the vision tower is built, not downloaded: no
``load_model``/image processor); only the ``flat`` patch-merge path ('square' images); no ``generate``; the
optimizer's bitsandbytes branch and ``maybe_zero_3`` (DeepSpeed ZeRO-3) are left out; LLaVA's own training-args
fields are kept only where the trainer reads them.

Real Trainer (5.x): Trainer calls ``self._get_train_sampler(train_dataset)``; LLaVATrainer's override takes no
argument (TypeError before step 1), in every profile. On 4.46 the call has no argument: trains, checkpoints, saves and
evaluates with eval_loss (measured on 4.46.3).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel, Trainer
from transformers.trainer_pt_utils import get_parameter_names
from transformers.trainer_utils import has_length

from tests.corpus._tiny import ROWS, ids, llama_config

try:
    from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS
except ImportError:  # not in every release
    ALL_LAYERNORM_LAYERS = [nn.LayerNorm]

IGNORE_INDEX = -100
IMAGE_TOKEN_INDEX = -200
PAD = 0


# --- llava/model/multimodal_encoder/clip_encoder.py ---------------------------------------------------------

class CLIPVisionTower(nn.Module):
    def __init__(self, vision_tower, args, delay_load=False):
        super().__init__()
        self.is_loaded = False
        self.vision_tower_name = vision_tower
        self.select_layer = args.mm_vision_select_layer
        self.select_feature = getattr(args, 'mm_vision_select_feature', 'patch')
        self.load_model()

    def load_model(self, device_map=None):
        # the repository: CLIPImageProcessor/CLIPVisionModel.from_pretrained(self.vision_tower_name)
        self.vision_tower = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=16,
            patch_size=8, projection_dim=16))
        self.vision_tower.requires_grad_(False)
        self.is_loaded = True

    def feature_select(self, image_forward_outs):
        image_features = image_forward_outs.hidden_states[self.select_layer]
        if self.select_feature == 'patch':
            image_features = image_features[:, 1:]
        elif self.select_feature == 'cls_patch':
            image_features = image_features
        else:
            raise ValueError(f'Unexpected select feature: {self.select_feature}')
        return image_features

    @torch.no_grad()
    def forward(self, images):
        if type(images) is list:
            image_features = []
            for image in images:
                image_forward_out = self.vision_tower(image.to(device=self.device, dtype=self.dtype).unsqueeze(0),
                                                      output_hidden_states=True)
                image_feature = self.feature_select(image_forward_out).to(image.dtype)
                image_features.append(image_feature)
        else:
            image_forward_outs = self.vision_tower(images.to(device=self.device, dtype=self.dtype),
                                                   output_hidden_states=True)
            image_features = self.feature_select(image_forward_outs).to(images.dtype)
        return image_features

    @property
    def dtype(self):
        return self.vision_tower.dtype

    @property
    def device(self):
        return self.vision_tower.device

    @property
    def config(self):
        return self.vision_tower.config

    @property
    def hidden_size(self):
        return self.config.hidden_size


def build_vision_tower(vision_tower_cfg, **kwargs):
    vision_tower = getattr(vision_tower_cfg, 'mm_vision_tower', getattr(vision_tower_cfg, 'vision_tower', None))
    return CLIPVisionTower(vision_tower, args=vision_tower_cfg, **kwargs)


def build_vision_projector(config, delay_load=False, **kwargs):
    import re

    projector_type = getattr(config, 'mm_projector_type', 'linear')
    if projector_type == 'linear':
        return nn.Linear(config.mm_hidden_size, config.hidden_size)
    mlp_gelu_match = re.match(r'^mlp(\d+)x_gelu$', projector_type)
    if mlp_gelu_match:
        mlp_depth = int(mlp_gelu_match.group(1))
        modules = [nn.Linear(config.mm_hidden_size, config.hidden_size)]
        for _ in range(1, mlp_depth):
            modules.append(nn.GELU())
            modules.append(nn.Linear(config.hidden_size, config.hidden_size))
        return nn.Sequential(*modules)
    raise ValueError(f'Unknown projector type: {projector_type}')


# --- llava/model/llava_arch.py ------------------------------------------------------------------------------

class LlavaMetaModel:

    def __init__(self, config):
        super(LlavaMetaModel, self).__init__(config)

        if hasattr(config, "mm_vision_tower"):
            self.vision_tower = build_vision_tower(config, delay_load=True)
            self.mm_projector = build_vision_projector(config)

    def get_vision_tower(self):
        vision_tower = getattr(self, 'vision_tower', None)
        if type(vision_tower) is list:
            vision_tower = vision_tower[0]
        return vision_tower


class LlavaMetaForCausalLM:

    def get_model(self):
        raise NotImplementedError

    def get_vision_tower(self):
        return self.get_model().get_vision_tower()

    def encode_images(self, images):
        image_features = self.get_model().get_vision_tower()(images)
        image_features = self.get_model().mm_projector(image_features)
        return image_features

    def prepare_inputs_labels_for_multimodal(self, input_ids, position_ids, attention_mask, past_key_values, labels,
                                             images, image_sizes=None):
        vision_tower = self.get_vision_tower()
        if vision_tower is None or images is None or input_ids.shape[1] == 1:
            return input_ids, position_ids, attention_mask, past_key_values, None, labels

        image_features = self.encode_images(images)

        _labels = labels
        _position_ids = position_ids
        _attention_mask = attention_mask
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        else:
            attention_mask = attention_mask.bool()
        if position_ids is None:
            position_ids = torch.arange(0, input_ids.shape[1], dtype=torch.long, device=input_ids.device)
        if labels is None:
            labels = torch.full_like(input_ids, IGNORE_INDEX)

        # remove the padding using attention_mask -- FIXME
        input_ids = [cur_input_ids[cur_attention_mask] for cur_input_ids, cur_attention_mask in
                     zip(input_ids, attention_mask)]
        labels = [cur_labels[cur_attention_mask] for cur_labels, cur_attention_mask in zip(labels, attention_mask)]

        new_input_embeds = []
        new_labels = []
        cur_image_idx = 0
        for batch_idx, cur_input_ids in enumerate(input_ids):
            num_images = (cur_input_ids == IMAGE_TOKEN_INDEX).sum()
            if num_images == 0:
                cur_image_features = image_features[cur_image_idx]
                cur_input_embeds_1 = self.get_model().embed_tokens(cur_input_ids)
                cur_input_embeds = torch.cat([cur_input_embeds_1, cur_image_features[0:0]], dim=0)
                new_input_embeds.append(cur_input_embeds)
                new_labels.append(labels[batch_idx])
                cur_image_idx += 1
                continue

            image_token_indices = [-1] + torch.where(cur_input_ids == IMAGE_TOKEN_INDEX)[0].tolist() + \
                [cur_input_ids.shape[0]]
            cur_input_ids_noim = []
            cur_labels = labels[batch_idx]
            cur_labels_noim = []
            for i in range(len(image_token_indices) - 1):
                cur_input_ids_noim.append(cur_input_ids[image_token_indices[i] + 1:image_token_indices[i + 1]])
                cur_labels_noim.append(cur_labels[image_token_indices[i] + 1:image_token_indices[i + 1]])
            split_sizes = [x.shape[0] for x in cur_labels_noim]
            cur_input_embeds = self.get_model().embed_tokens(torch.cat(cur_input_ids_noim))
            cur_input_embeds_no_im = torch.split(cur_input_embeds, split_sizes, dim=0)
            cur_new_input_embeds = []
            cur_new_labels = []

            for i in range(num_images + 1):
                cur_new_input_embeds.append(cur_input_embeds_no_im[i])
                cur_new_labels.append(cur_labels_noim[i])
                if i < num_images:
                    cur_image_features = image_features[cur_image_idx]
                    cur_image_idx += 1
                    cur_new_input_embeds.append(cur_image_features)
                    cur_new_labels.append(torch.full((cur_image_features.shape[0],), IGNORE_INDEX,
                                                     device=cur_labels.device, dtype=cur_labels.dtype))

            cur_new_input_embeds = [x.to(self.device) for x in cur_new_input_embeds]
            cur_new_input_embeds = torch.cat(cur_new_input_embeds)
            cur_new_labels = torch.cat(cur_new_labels)

            new_input_embeds.append(cur_new_input_embeds)
            new_labels.append(cur_new_labels)

        tokenizer_model_max_length = getattr(self.config, 'tokenizer_model_max_length', None)
        if tokenizer_model_max_length is not None:
            new_input_embeds = [x[:tokenizer_model_max_length] for x in new_input_embeds]
            new_labels = [x[:tokenizer_model_max_length] for x in new_labels]

        max_len = max(x.shape[0] for x in new_input_embeds)
        batch_size = len(new_input_embeds)

        new_input_embeds_padded = []
        new_labels_padded = torch.full((batch_size, max_len), IGNORE_INDEX, dtype=new_labels[0].dtype,
                                       device=new_labels[0].device)
        attention_mask = torch.zeros((batch_size, max_len), dtype=attention_mask.dtype, device=attention_mask.device)
        position_ids = torch.zeros((batch_size, max_len), dtype=position_ids.dtype, device=position_ids.device)

        for i, (cur_new_embed, cur_new_labels) in enumerate(zip(new_input_embeds, new_labels)):
            cur_len = cur_new_embed.shape[0]
            new_input_embeds_padded.append(torch.cat((
                cur_new_embed,
                torch.zeros((max_len - cur_len, cur_new_embed.shape[1]), dtype=cur_new_embed.dtype,
                            device=cur_new_embed.device)), dim=0))
            if cur_len > 0:
                new_labels_padded[i, :cur_len] = cur_new_labels
                attention_mask[i, :cur_len] = True
                position_ids[i, :cur_len] = torch.arange(0, cur_len, dtype=position_ids.dtype,
                                                         device=position_ids.device)

        new_input_embeds = torch.stack(new_input_embeds_padded, dim=0)

        if _labels is None:
            new_labels = None
        else:
            new_labels = new_labels_padded

        if _attention_mask is None:
            attention_mask = None
        else:
            attention_mask = attention_mask.to(dtype=_attention_mask.dtype)

        if _position_ids is None:
            position_ids = None

        return None, position_ids, attention_mask, past_key_values, new_input_embeds, new_labels


# --- llava/model/language_model/llava_llama.py --------------------------------------------------------------

class LlavaConfig(LlamaConfig):
    model_type = "llava_llama"


class LlavaLlamaModel(LlavaMetaModel, LlamaModel):
    config_class = LlavaConfig

    def __init__(self, config: LlamaConfig):
        super(LlavaLlamaModel, self).__init__(config)


class LlavaLlamaForCausalLM(LlamaForCausalLM, LlavaMetaForCausalLM):
    config_class = LlavaConfig

    def __init__(self, config):
        super(LlamaForCausalLM, self).__init__(config)
        self.model = LlavaLlamaModel(config)
        self.pretraining_tp = config.pretraining_tp
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

        # Initialize weights and apply final processing
        self.post_init()

    def get_model(self):
        return self.model

    def forward(
        self,
        input_ids: torch.LongTensor = None,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        past_key_values: Optional[List[torch.FloatTensor]] = None,
        inputs_embeds: Optional[torch.FloatTensor] = None,
        labels: Optional[torch.LongTensor] = None,
        use_cache: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        images: Optional[torch.FloatTensor] = None,
        image_sizes: Optional[List[List[int]]] = None,
        return_dict: Optional[bool] = None,
    ):
        if inputs_embeds is None:
            (
                input_ids,
                position_ids,
                attention_mask,
                past_key_values,
                inputs_embeds,
                labels
            ) = self.prepare_inputs_labels_for_multimodal(
                input_ids,
                position_ids,
                attention_mask,
                past_key_values,
                labels,
                images,
                image_sizes
            )

        return super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=return_dict
        )


# --- llava/train/llava_trainer.py ---------------------------------------------------------------------------

class LLaVATrainer(Trainer):

    def _get_train_sampler(self) -> Optional[torch.utils.data.Sampler]:
        if self.train_dataset is None or not has_length(self.train_dataset):
            return None

        if self.args.group_by_modality_length:
            raise NotImplementedError("LengthGroupedSampler (group_by_modality_length) is not part of this copy")
        else:
            return super()._get_train_sampler()

    def create_optimizer(self):
        opt_model = self.model

        if self.optimizer is None:
            decay_parameters = get_parameter_names(opt_model, ALL_LAYERNORM_LAYERS)
            decay_parameters = [name for name in decay_parameters if "bias" not in name]
            if self.args.mm_projector_lr is not None:
                projector_parameters = [name for name, _ in opt_model.named_parameters() if "mm_projector" in name]
                optimizer_grouped_parameters = [
                    {"params": [p for n, p in opt_model.named_parameters()
                                if (n in decay_parameters and n not in projector_parameters and p.requires_grad)],
                     "weight_decay": self.args.weight_decay},
                    {"params": [p for n, p in opt_model.named_parameters()
                                if (n not in decay_parameters and n not in projector_parameters and p.requires_grad)],
                     "weight_decay": 0.0},
                    {"params": [p for n, p in opt_model.named_parameters()
                                if (n in decay_parameters and n in projector_parameters and p.requires_grad)],
                     "weight_decay": self.args.weight_decay, "lr": self.args.mm_projector_lr},
                    {"params": [p for n, p in opt_model.named_parameters()
                                if (n not in decay_parameters and n in projector_parameters and p.requires_grad)],
                     "weight_decay": 0.0, "lr": self.args.mm_projector_lr},
                ]
            else:
                optimizer_grouped_parameters = [
                    {"params": [p for n, p in opt_model.named_parameters()
                                if (n in decay_parameters and p.requires_grad)],
                     "weight_decay": self.args.weight_decay},
                    {"params": [p for n, p in opt_model.named_parameters()
                                if (n not in decay_parameters and p.requires_grad)],
                     "weight_decay": 0.0},
                ]

            optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args)

            self.optimizer = optimizer_cls(optimizer_grouped_parameters, **optimizer_kwargs)

        return self.optimizer

    def _save_checkpoint(self, model, trial, metrics=None):
        if getattr(self.args, 'tune_mm_mlp_adapter', False):
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
            checkpoint_folder = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            run_dir = self._get_output_dir(trial=trial)
            output_dir = os.path.join(run_dir, checkpoint_folder)
            keys_to_match = ['mm_projector', 'vision_resampler']
            weight_to_save = {k: t.detach().cpu().clone() for k, t in self.model.named_parameters()
                              if any(key_match in k for key_match in keys_to_match)}
            self.model.config.save_pretrained(output_dir)
            torch.save(weight_to_save, os.path.join(output_dir, 'mm_projector.bin'))
        else:
            super(LLaVATrainer, self)._save_checkpoint(model, trial, metrics)

    def _save(self, output_dir: Optional[str] = None, state_dict=None):
        if getattr(self.args, 'tune_mm_mlp_adapter', False):
            pass
        else:
            super(LLaVATrainer, self)._save(output_dir, state_dict)


# --- llava/train/train.py -----------------------------------------------------------------------------------

@dataclass
class TrainingArguments(transformers.TrainingArguments):
    remove_unused_columns: bool = field(default=False)
    freeze_mm_mlp_adapter: bool = field(default=False)
    model_max_length: int = field(default=64)
    mm_projector_lr: Optional[float] = None
    group_by_modality_length: bool = field(default=False)


@dataclass
class DataCollatorForSupervisedDataset(object):
    """Collate examples for supervised fine-tuning."""

    pad_token_id: int = PAD
    model_max_length: int = 64

    def __call__(self, instances: Sequence[dict]) -> dict[str, torch.Tensor]:
        input_ids, labels = tuple([instance[key] for instance in instances] for key in ("input_ids", "labels"))
        input_ids = torch.nn.utils.rnn.pad_sequence(input_ids, batch_first=True, padding_value=self.pad_token_id)
        labels = torch.nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=IGNORE_INDEX)
        input_ids = input_ids[:, :self.model_max_length]
        labels = labels[:, :self.model_max_length]
        batch = dict(input_ids=input_ids, labels=labels, attention_mask=input_ids.ne(self.pad_token_id))

        if 'image' in instances[0]:
            images = [instance['image'] for instance in instances]
            if all(x is not None and x.shape == images[0].shape for x in images):
                batch['images'] = torch.stack(images)
            else:
                batch['images'] = images

        return batch


def Model() -> nn.Module:
    config = LlavaConfig(**llama_config(pretraining_tp=1).to_dict())
    config.mm_vision_tower = "openai/clip-vit-large-patch14-336"
    config.mm_vision_select_layer = -2
    config.mm_vision_select_feature = "patch"
    config.mm_projector_type = "mlp2x_gelu"
    config.mm_hidden_size = 16
    config.mm_patch_merge_type = "flat"
    config.image_aspect_ratio = "pad"
    config.tokenizer_model_max_length = 64
    config.use_cache = False
    return LlavaLlamaForCausalLM(config)


def make_data() -> list[dict]:
    """LazySupervisedDataset items: "<image>\\n question" + answer ids (prompt labels -100) and a 3x16x16 image."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(ROWS):
        prompt = torch.cat([torch.tensor([1, IMAGE_TOKEN_INDEX]), ids(g, 3 + i % 2)])
        answer = torch.cat([ids(g, 3), torch.tensor([2])])
        input_ids = torch.cat([prompt, answer])
        labels = torch.cat([torch.full_like(prompt, IGNORE_INDEX), answer])
        rows.append({"input_ids": input_ids, "labels": labels, "image": torch.randn(3, 16, 16, generator=g)})
    return rows


collator = DataCollatorForSupervisedDataset()
TRAINER = LLaVATrainer
ARGS_CLASS = TrainingArguments
KIND = "trainer"
ARGS = {"remove_unused_columns": False}
EXPECTED = {"basic": "fails", "checkpointing": "fails", "save": "fails", "eval": "fails"}
EXPECTED_BY_LINE = {"4.46": {"basic": "ok", "checkpointing": "ok", "save": "ok", "eval": "ok"}}
