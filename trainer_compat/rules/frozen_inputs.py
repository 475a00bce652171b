"""Reentrant checkpointing over frozen input embeddings: no gradient reaches the checkpointed blocks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from packaging.version import Version

from trainer_compat.analysis import CHECKPOINTING_METHODS, uses_reentrant
from trainer_compat.example_models import EXPLICIT_WRAPPER
from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Severity
from trainer_compat.protocol.data import INPUT_GRADS_BUILT_IN
from trainer_compat.rules.base import Context, Example, Rule
from trainer_compat.signature import inspected_module
from trainer_compat.versions import VersionRange

if TYPE_CHECKING:
    from torch import nn

# From 5.0.0 PreTrainedModel checkpoints non-reentrantly by default and, for text models, calls
# enable_input_require_grads() itself; before, the default is use_reentrant=True and nothing helps the inputs.

_FROZEN = EXPLICIT_WRAPPER.replace(
    "        self.model = tiny_causal_lm(tie=False)",
    "        self.model = tiny_causal_lm(tie=False)\n"
    "        for embedding in (self.model.transformer.wte, self.model.transformer.wpe):\n"
    "            embedding.weight.requires_grad_(False)  # as LoRA or freeze_llm leave them").replace(
    "    def forward", "    def gradient_checkpointing_enable(self, *args, **kwargs):\n"
                     "        self.model.gradient_checkpointing_enable(*args, **kwargs)\n\n    def forward")
_ON = {"gradient_checkpointing": True}
# Only a projector trains (Ultravox, LLaVA's first stage): no trainable weight inside the checkpointed blocks.
_FROZEN_LM_TRAINED_PROJECTOR = _FROZEN.replace(
    "            embedding.weight.requires_grad_(False)  # as LoRA or freeze_llm leave them",
    "            embedding.weight.requires_grad_(False)  # as LoRA or freeze_llm leave them\n"
    "        self.model.requires_grad_(False)\n"
    "        self.projector = nn.Linear(32, 32)").replace(
    "        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)",
    "        embeds = self.projector(self.model.get_input_embeddings()(input_ids))\n"
    "        return self.model(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)")
_UNFROZEN = EXPLICIT_WRAPPER.replace(
    "    def forward", "    def gradient_checkpointing_enable(self, *args, **kwargs):\n"
                     "        self.model.gradient_checkpointing_enable(*args, **kwargs)\n\n    def forward")
_EMBEDDINGS = "    def get_input_embeddings(self):\n        return self.model.get_input_embeddings()\n\n"
_LORA = {"r": 2, "target_modules": ["c_attn"]}


def _language_models(ctx: Context, model: nn.Module) -> list[tuple[str, nn.Module]]:
    if ctx.subject.is_pretrained:
        return [("", model)]
    if ctx.subject.is_peft:
        return [("base_model.model", inspected_module(ctx.subject))]  # get_base_model()
    return ctx.subject.pretrained_submodules()


def _frozen_inputs(lm: nn.Module) -> bool:
    """A text model (its inputs are token ids) whose every embedding table is frozen."""
    if getattr(lm, "main_input_name", None) != "input_ids":
        return False  # audio/vision encoders start with trainable projections, not with the embeddings
    from torch import nn

    embeddings = [m for m in lm.modules() if isinstance(m, nn.Embedding)]
    return bool(embeddings) and not any(p.requires_grad for m in embeddings for p in m.parameters())


def _trainable_in_blocks(lm: nn.Module) -> bool:
    """Trainable weights inside the blocks that checkpointing wraps (the classes of `_no_split_modules`); where
    the model names none, any trainable weight counts. Trainable modules outside the blocks (a multimodal
    projector feeding inputs_embeds) get their gradient whatever reentrant checkpointing does."""
    blocks: set[str] = set()
    for module in lm.modules():
        blocks.update(getattr(module, "_no_split_modules", None) or [])
    params = [p for m in lm.modules() if type(m).__name__ in blocks for p in m.parameters()] if blocks else \
        list(lm.parameters())
    return any(p.requires_grad for p in params)


def _inputs_helped(lm: nn.Module) -> bool:
    return getattr(lm, "_require_grads_hook", None) is not None or bool(getattr(lm, "_hf_peft_config_loaded", False))


def _adapter_to_come(ctx: Context) -> bool:
    """`--peft` with a weight adapter (LoRA and kin) for a model that is not a PeftModel yet: it will freeze
    every weight but the adapter's, the input embeddings included."""
    config = ctx.setup.peft
    if not config:
        return False
    return not ctx.subject.is_peft and not config.get("num_virtual_tokens")


def _peft_will_help(ctx: Context) -> bool:
    """PeftModel.__init__ makes the inputs require grad through the wrapper's own `enable_input_require_grads`
    or `get_input_embeddings`, unless the wrapper says it is not checkpointing (peft_model.py)."""
    if ctx.subject.member("is_gradient_checkpointing").value is False:
        return False
    return any(ctx.subject.member(m).present for m in ("enable_input_require_grads", "get_input_embeddings"))


class CheckpointingFrozenInputs(Rule):
    code = "TC403"
    name = "checkpointing-frozen-inputs"
    severity = Severity.ERROR
    summary = "Reentrant checkpointing over frozen input embeddings: no gradient reaches the checkpointed blocks."
    explanation = (
        "Reentrant checkpointing (`use_reentrant=True`, the default of transformers before 5.0) only "
        "back-propagates into a checkpointed block when one of its inputs requires grad. With every input "
        "embedding frozen (LoRA, `freeze_llm`, `prepare_model_for_kbit_training` without the hook) the hidden "
        "states entering the first block do not, so the trainable weights inside the blocks get no gradient: "
        "training raises `element 0 of tensors does not require grad` when all trainable weights are inside, "
        "and silently leaves them unchanged otherwise. 5.0+ calls `enable_input_require_grads()` for text "
        "models itself."
    )
    versions = VersionRange(until=INPUT_GRADS_BUILT_IN)
    fires = (Example(_FROZEN, args=_ON, versions=versions),
             Example(_UNFROZEN, args=_ON, versions=versions, peft=_LORA))
    silent = (Example(_FROZEN, args={**_ON, "gradient_checkpointing_kwargs": {"use_reentrant": False}}),
              Example(_FROZEN.replace("  # as LoRA or freeze_llm leave them",
                                      "\n        self.model.enable_input_require_grads()"), args=_ON),
              Example(_UNFROZEN.replace("    def forward", _EMBEDDINGS + "    def forward"), args=_ON, peft=_LORA),
              Example(_FROZEN_LM_TRAINED_PROJECTOR, args=_ON))

    def check(self, ctx: Context) -> Iterator[Finding]:
        model = ctx.subject.instance
        if not ctx.has(Feature.CHECKPOINTING) or model is None:
            return
        if not uses_reentrant(ctx, default=True) or ctx.version >= Version(INPUT_GRADS_BUILT_IN):
            return
        methods = [ctx.subject.member(m) for m in CHECKPOINTING_METHODS]
        if not (ctx.subject.is_pretrained or ctx.subject.is_peft or any(m.present for m in methods)):
            return  # TC001 reports the missing checkpointing method
        if any((m.owner or "").startswith("trainer_compat.") for m in methods):
            return  # trainer-compat's own shims checkpoint non-reentrantly
        adapter = _adapter_to_come(ctx)
        if adapter and _peft_will_help(ctx):
            return
        for name, lm in _language_models(ctx, model):
            if adapter:
                if getattr(lm, "main_input_name", None) != "input_ids":
                    continue
            elif not _frozen_inputs(lm) or _inputs_helped(lm) or not _trainable_in_blocks(lm):
                continue
            where = f"{name} ({type(lm).__name__})" if name else type(lm).__name__
            frozen = "will have frozen input embeddings under the adapter" if adapter else "has frozen input embeddings"
            yield self.finding(
                ctx, f"{where} {frozen} and transformers {ctx.version} checkpoints with "
                     "use_reentrant=True: no gradient reaches the trainable weights inside the checkpointed "
                     "blocks (Trainer raises 'element 0 of tensors does not require grad', or they silently "
                     "stay unchanged)",
                member="gradient_checkpointing_enable", feature=Feature.CHECKPOINTING,
                fix="pass gradient_checkpointing_kwargs={'use_reentrant': False}, or call "
                    "model.enable_input_require_grads() before training" + (
                        " (with PEFT: delegate `get_input_embeddings` or `enable_input_require_grads` from the "
                        "wrapper, and get_peft_model calls it)" if adapter else ""))
