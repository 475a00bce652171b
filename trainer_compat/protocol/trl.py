"""TRL's protocol boundaries: the releases from which SFTTrainer reads each member of the model."""

from __future__ import annotations

from packaging.version import Version

from trainer_compat.versions import VersionRange

USE_CACHE_TRL = Version("0.22")  # SFTTrainer calls the forward with use_cache=False
TAGS_TRL = Version("0.27")  # SFTTrainer() calls model.add_model_tags
TEXT_CONFIG_TRL = Version("1.8")  # SFTTrainer() reads model.config.get_text_config()
GENERATION_CONFIG_TRL = Version("1.13")  # SFTTrainer() reads model.generation_config.pad_token_id
CHUNKED_TRL = Version("1.4")  # loss_type="chunked_nll" (the default from 1.7) replaces the forward's LM head
FUSED_HEAD_TRL = Version("1.15")  # SFTTrainer trains through base_model + get_output_embeddings() (fused head)
# Every TRL release with these hazards (>= 0.22) requires transformers >= 4.55.
TRL_LINES = VersionRange(since="4.55")
