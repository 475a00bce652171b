"""What Trainer and Seq2SeqTrainer read or call on the model, per transformers version.

Every entry was read in the sources of transformers 4.46.3, 4.57.6, 5.0.0 and 5.24.0, with the
release boundaries bisected over every minor release in between (see docs/protocol.md).
``tests/test_protocol_sources.py`` re-checks, on the installed version, that each entry's call
site exists exactly in the versions the entry claims.
"""

from __future__ import annotations

from trainer_compat.features import Feature as F
from trainer_compat.findings import Severity
from trainer_compat.protocol.model import CallShape, Guard, Kind, Requirement, Site
from trainer_compat.versions import VersionRange

# Release boundaries (first release with the new behaviour).
EVERY_N_LAYERS = "5.16.0"  # gradient_checkpointing_enable(..., every_n_layers=...) (and the call moved in 5.3.0)
OFFLOAD = "5.17.0"  # gradient_checkpointing_enable(..., every_n_layers=..., offload=...)
ACTIVATION_CHECKPOINTING = "5.23.0"  # activation_checkpointing_enable preferred, gradient_checkpointing_enable fallback
LOSS_KWARGS_ANY_VAR_KEYWORD = "4.47.0"  # any **kwargs in forward makes model_accepts_loss_kwargs True
ACCUMULATION_DIVIDED = "4.48.0"  # training_step divides the loss by the accumulation steps without num_items_in_batch
# (4.46.0-4.47.x never divide: the gradient of such a model is accumulation-steps times too large)
ACCEPTS_LOSS_KWARGS_ATTR = "4.48.0"  # model.accepts_loss_kwargs is honoured
SAVE_UNWRAPS_COMPILE = "4.52.0"  # _save unwraps torch.compile (keep_torch_compile=False): save_pretrained
LABEL_SMOOTHING_READS_CONFIG = "4.56.0"  # Trainer.__init__ reads model.config with label smoothing on
USE_CACHE_ASSIGNMENT = "5.0.0"  # Trainer.__init__ assigns model.config.use_cache
NEW_NAMES = ACTIVATION_CHECKPOINTING  # activation_checkpointing* arguments: gradient_checkpointing* deprecated aliases
NON_REENTRANT_DEFAULT = "5.0.0"  # PreTrainedModel.gradient_checkpointing_enable: use_reentrant=True before
INPUT_GRADS_BUILT_IN = "5.0.0"  # gradient_checkpointing_enable makes the input embeddings require grad itself
RECURSIVE_UNWRAP = "4.47.0"  # Trainer: `self.model = unwrap_model(self.model, recursive=True)` under FSDP
RECURSIVE_UNWRAP_EVERY_RUN_UNTIL = "5.3.0"  # from 5.3 only in _update_auto_batch_size (auto_find_batch_size)
PARALLELIZABLE_FLAGS_UNTIL = "5.0.0"  # 4.x Trainer also honours is_parallelizable and model_parallel
T5_LOSS_KWARGS = "5.0.0"  # T5ForConditionalGeneration.forward takes **kwargs (its loss ignores num_items_in_batch)
# accelerate (not transformers) releases:
ACCELERATE_DROPS_ABSENT_NO_SPLIT = "1.16.0"  # FSDP plugins skip _no_split_modules names the model lacks (no raise)

_GC_FIX = (
    "delegate to the inner model: `def gradient_checkpointing_enable(self, *args, **kwargs): "
    "return self.model.gradient_checkpointing_enable(*args, **kwargs)` (and the same for "
    "`gradient_checkpointing_disable` / `activation_checkpointing_enable`), or run `trainer-compat fix`"
)

_AC_FIX = (
    "delegate to the inner model: `def activation_checkpointing_enable(self, *args, **kwargs): "
    "return self.model.activation_checkpointing_enable(*args, **kwargs)` (and `gradient_checkpointing_enable` "
    "for transformers 4.x), or run `trainer-compat fix`"
)


def _gradient_checkpointing(kwargs: tuple[str, ...], versions: VersionRange) -> Requirement:
    return Requirement(
        member="gradient_checkpointing_enable",
        kind=Kind.METHOD,
        features=frozenset({F.CHECKPOINTING}),
        guard=Guard.HARD,
        site=Site(r"\.gradient_checkpointing_enable\("),
        call=CallShape(kwargs),
        versions=versions,
        consequence="Trainer.train() raises AttributeError before the first step",
        fix=_GC_FIX,
    )


REQUIREMENTS: tuple[Requirement, ...] = (
    _gradient_checkpointing(("gradient_checkpointing_kwargs",), VersionRange(until=EVERY_N_LAYERS)),
    _gradient_checkpointing(("gradient_checkpointing_kwargs", "every_n_layers"),
                            VersionRange(since=EVERY_N_LAYERS, until=OFFLOAD)),
    _gradient_checkpointing(("gradient_checkpointing_kwargs", "every_n_layers", "offload"),
                            VersionRange(since=OFFLOAD, until=ACTIVATION_CHECKPOINTING)),
    Requirement(
        member="gradient_checkpointing_enable",
        kind=Kind.METHOD,
        features=frozenset({F.CHECKPOINTING}),
        guard=Guard.FALLBACK,
        preferred="activation_checkpointing_enable",
        site=Site(r"self\.model\.gradient_checkpointing_enable\("),
        call=CallShape(("gradient_checkpointing_kwargs", "every_n_layers", "offload")),
        versions=VersionRange(since=ACTIVATION_CHECKPOINTING),
        consequence="Trainer.train() raises AttributeError before the first step",
        fix=_AC_FIX,
    ),
    Requirement(
        member="activation_checkpointing_enable",
        kind=Kind.METHOD,
        features=frozenset({F.CHECKPOINTING}),
        guard=Guard.HASATTR,
        site=Site(r"self\.model\.activation_checkpointing_enable\("),
        call=CallShape(("activation_checkpointing_kwargs", "every_n_layers", "offload")),
        versions=VersionRange(since=ACTIVATION_CHECKPOINTING),
        consequence="absent: Trainer falls back to the deprecated gradient_checkpointing_enable",
        when_missing=None,
    ),
    Requirement(
        member="get_input_embeddings",
        kind=Kind.METHOD,
        features=frozenset({F.NEFTUNE}),
        guard=Guard.HARD,
        site=Site(r"\.get_input_embeddings\(\)", ("transformers.trainer", "transformers.integrations.neftune")),
        call=CallShape(()),
        consequence="Trainer.train() raises AttributeError when it attaches the NEFTune noise hook",
        fix="delegate `get_input_embeddings` to the inner model",
    ),
    Requirement(
        member="generate",
        kind=Kind.METHOD,
        features=frozenset({F.PREDICT_WITH_GENERATE}),
        guard=Guard.HARD,
        site=Site(r"self\.model\.generate\(", ("transformers.trainer_seq2seq",)),
        call=CallShape(("input_ids", "attention_mask")),
        trainers=("seq2seq",),
        consequence="Seq2SeqTrainer.predict() / evaluate() with compute_metrics raises AttributeError",
        fix="delegate `generate` to the inner model: `def generate(self, *args, **kwargs): "
        "return self.model.generate(*args, **kwargs)`",
    ),
    Requirement(
        member="generation_config",
        kind=Kind.ATTRIBUTE,
        features=frozenset({F.PREDICT_WITH_GENERATE}),
        guard=Guard.HARD,
        site=Site(r"self\.model\.generation_config", ("transformers.trainer_seq2seq",)),
        trainers=("seq2seq",),
        consequence="Seq2SeqTrainer.prediction_step raises AttributeError after generating",
        fix="expose the inner model's GenerationConfig: a `generation_config` property returning "
        "`self.model.generation_config`",
    ),
    Requirement(
        member="config",
        kind=Kind.ATTRIBUTE,
        features=frozenset({F.LABEL_SMOOTHING}),
        guard=Guard.HARD,
        site=Site(r"self\.model\.config, \"problem_type\""),
        versions=VersionRange(since=LABEL_SMOOTHING_READS_CONFIG),
        consequence="Trainer() raises AttributeError at construction",
        fix="expose the inner model's config: a `config` property returning `self.model.config`",
    ),
    Requirement(
        member="config",
        kind=Kind.ATTRIBUTE,
        features=frozenset({F.PUSH_TO_HUB}),
        guard=Guard.HARD,
        site=Site(r"trainer\.model\.config", ("transformers.modelcard",)),
        consequence="Trainer.create_model_card() (push_to_hub) raises AttributeError",
        fix="expose the inner model's config: a `config` property returning `self.model.config`",
    ),
    Requirement(
        member="_keys_to_ignore_on_save",
        kind=Kind.ATTRIBUTE,
        features=frozenset({F.LOAD_BEST, F.RESUME}),
        guard=Guard.CONDITIONAL,
        condition="when the checkpoint that is loaded back misses keys of the model",
        site=Site(r"self\.model\._keys_to_ignore_on_save"),
        consequence="loading the best model / resuming raises AttributeError if the saved checkpoint lacks keys",
        when_missing=Severity.WARNING,
        fix="declare `_keys_to_ignore_on_save = None` on the wrapper (or delegate it to the inner model)",
    ),
    Requirement(
        member="_no_split_modules",
        kind=Kind.ATTRIBUTE,
        features=frozenset({F.FSDP}),
        guard=Guard.HASATTR,
        site=Site(r"getattr\(model, \"_no_split_modules\"", ("transformers.trainer", "accelerate.utils.dataclasses")),
        consequence="transformer-based auto-wrap finds no layer class: the whole model becomes one FSDP unit",
        when_missing=Severity.WARNING,
        fix="declare `_no_split_modules` listing the decoder-layer classes of the inner model(s), or set "
        "fsdp_config['transformer_layer_cls_to_wrap']",
    ),
    Requirement(
        member="accepts_loss_kwargs",
        kind=Kind.ATTRIBUTE,
        features=frozenset({F.TRAIN}),
        guard=Guard.HASATTR,
        site=Site(r"hasattr\((?:unwrapped_)?model, \"accepts_loss_kwargs\"\)"),
        versions=VersionRange(since=ACCEPTS_LOSS_KWARGS_ATTR),
        consequence="absent: Trainer decides from the forward signature whether to pass num_items_in_batch",
        when_missing=None,
    ),
    Requirement(
        member="forward",
        kind=Kind.METHOD,
        features=frozenset({F.TRAIN}),
        guard=Guard.HARD,
        site=Site(r"outputs = model\(\*\*inputs\)"),
        consequence="every training step calls model(**inputs)",
    ),
)


def requirements_for(version: object, features: frozenset[F], trainer: str) -> list[Requirement]:
    """The requirements that apply to ``version`` for these features and this trainer kind."""
    # TRL's trainers (SFT, DPO, Reward, GRPO) subclass Trainer: its protocol holds
    trainer = "trainer" if trainer in ("sft", "dpo", "reward", "grpo") else trainer
    return [r for r in REQUIREMENTS if r.applies(version, features, trainer)]
