"""Seq2SeqTrainer with predict_with_generate: what generation reads besides `generate`."""

from __future__ import annotations

from collections.abc import Iterator

from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Severity
from trainer_compat.protocol.model import Site
from trainer_compat.rules.base import Context, Example, Rule

_PAD_SITE = Site(r"self\.model\.config\.pad_token_id", ("transformers.trainer_seq2seq",))
_GEN_SITE = Site(r"gen_config = self\.model\.generation_config", ("transformers.trainer_seq2seq",))
_T5_WRAPPER = """
import torch.nn as nn
from trainer_compat.testing import tiny_seq2seq

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_seq2seq()
        self.config = self.model.config
        self.generation_config = GENERATION_CONFIG

    def generate(self, *args, **kwargs):
        return self.model.generate(*args, **kwargs)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
"""
_ARGS = {"predict_with_generate": True, "eval_strategy": "steps", "eval_steps": 1}


class GenerationContract(Rule):
    code = "TC501"
    name = "generation-contract"
    severity = Severity.ERROR
    summary = "predict_with_generate needs a real GenerationConfig and config.pad_token_id."
    explanation = (
        "Seq2SeqTrainer's prediction_step calls `model.generate(...)`, then reads "
        "`model.generation_config._from_model_config`, `max_length` and friends, so the member must be a real "
        "`GenerationConfig`; it pads generated tokens with `model.config.pad_token_id` when the tokenizer "
        "gives none, and raises `Pad_token_id must be set in the configuration of the model` without it."
    )
    fires = (Example(_T5_WRAPPER.replace("GENERATION_CONFIG", "{'max_new_tokens': 4}"), trainer="seq2seq",
                     args=_ARGS),)
    silent = (Example(_T5_WRAPPER.replace("GENERATION_CONFIG", "self.model.generation_config"),
                      trainer="seq2seq", args=_ARGS),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        if ctx.setup.trainer != "seq2seq" or not ctx.has(Feature.PREDICT_WITH_GENERATE):
            return
        if ctx.subject.instance is None:
            ctx.skip(self.code, "the generation config's type needs an instance")
            return
        from transformers import GenerationConfig

        gen = ctx.subject.member("generation_config")
        if gen.present and not isinstance(gen.value, GenerationConfig):
            site = ctx.site(_GEN_SITE)
            yield self.finding(
                ctx, f"{ctx.subject.cls.__name__}.generation_config is a {type(gen.value).__name__}, not a "
                     f"GenerationConfig: Seq2SeqTrainer reads its attributes after generate()"
                     f"{' at ' + str(site) if site else ''} and raises AttributeError",
                member="generation_config", feature=Feature.PREDICT_WITH_GENERATE, call_site=site,
                fix="expose the inner model's GenerationConfig (`self.model.generation_config`)")
        config = ctx.subject.member("config")
        if config.present and getattr(config.value, "pad_token_id", None) is None:
            site = ctx.site(_PAD_SITE)
            yield self.finding(
                ctx, f"{ctx.subject.cls.__name__}.config has no pad_token_id: when the tokenizer gives none, "
                     f"Seq2SeqTrainer pads generated tokens with it{' at ' + str(site) if site else ''} and "
                     "raises ValueError",
                severity=Severity.WARNING, member="config", feature=Feature.PREDICT_WITH_GENERATE,
                call_site=site, fix="set config.pad_token_id, or pass a tokenizer with a pad token")
