"""TRL's protocol boundaries: the releases from which SFTTrainer reads each member of the model."""

from __future__ import annotations

from packaging.version import Version

from trainer_compat.versions import VersionRange

USE_CACHE_TRL = Version("0.22")
TAGS_TRL = Version("0.27")
TEXT_CONFIG_TRL = Version("1.8")
GENERATION_CONFIG_TRL = Version("1.13")
CHUNKED_TRL = Version("1.4")  # loss_type="chunked_nll" (the default from 1.7)
FUSED_HEAD_TRL = Version("1.15")
# Every TRL release with these hazards (>= 0.22) requires transformers >= 4.55.
TRL_LINES = VersionRange(since="4.55")
