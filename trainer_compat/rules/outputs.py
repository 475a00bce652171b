"""What the forward returns, as Trainer's own compute_loss reads it (silent when the user's Trainer overrides it)."""

from __future__ import annotations

from collections.abc import Iterator

from trainer_compat import analysis
from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Location, Severity
from trainer_compat.protocol.model import Site
from trainer_compat.returns import DICT, LOGITS, LOSS, NONE, TUPLE, Returned, forward_returns
from trainer_compat.rules.base import Context, Example, Expect, Rule
from trainer_compat.signature import ForwardView, inspected_module
from trainer_compat.subject import source_location

_HEAD = """
import torch.nn as nn
from trainer_compat.testing import tiny_causal_lm

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    @property
    def config(self):
        return self.model.config
"""
_FORWARD = """
    def forward(self, input_ids, attention_mask=None, labels=None):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
"""
VALUE_HEAD = _HEAD.replace("tie=False)", "tie=False)\n        self.v_head = nn.Linear(32, 1)") + """
    def forward(self, input_ids, attention_mask=None, labels=None):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                         output_hidden_states=True)
        lm_logits, loss = out.logits, out.loss
        value = self.v_head(out.hidden_states[-1]).squeeze(-1)
        return (lm_logits, loss, value)
"""
RETURNS_LOGITS = _HEAD + _FORWARD + "        return out.logits\n"
RETURNS_LOSS = _HEAD + _FORWARD + "        return out.loss\n"
LOSS_FIRST = _HEAD + _FORWARD + "        return (out.loss, out.logits)\n"
DICT_WITH_LOGITS = _HEAD + _FORWARD + "        return {\"loss\": out.loss, \"logits\": out.logits}\n"
DICT_WITHOUT_LOGITS = _HEAD + _FORWARD + "        return {\"loss\": out.loss, \"hidden\": out.logits}\n"
PASS_THROUGH = _HEAD + _FORWARD + "        return out\n"
# The user's Trainer subclass computes the loss from the logits itself.
OWN_COMPUTE_LOSS = """
import torch
import torch.nn.functional as F
from transformers import Trainer

class MyTrainer(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        out = model(**inputs)
        if isinstance(out, dict):
            logits = out["logits"]
        else:
            logits = out if torch.is_tensor(out) else next(o for o in out if torch.is_tensor(o) and o.dim() == 3)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
        return (loss, {"logits": logits}) if return_outputs else loss
"""
_LOSS_SITE = Site(r"loss = outputs\[\"loss\"\] if isinstance\(outputs, dict\) else outputs\[0\]")
_POP_SITE = Site(r"labels = inputs\.pop\(\"labels\"\)")
_SMOOTHER_SITE = Site(r"logits = model_output\[\"logits\"\] if isinstance\(model_output, dict\) else model_output\[0\]",
                      ("transformers.trainer_pt_utils",))


def _applies(ctx: Context) -> list[Returned] | None:
    """The forward's returns when Trainer's own compute_loss reads them, else None."""
    if ctx.setup.trainer == "sft" or ctx.setup.overrides("compute_loss"):
        return None  # SFTTrainer / the user's Trainer subclass computes the loss its own way
    view = ForwardView.of(ctx.subject)
    module = inspected_module(ctx.subject)
    klass = type(module) if module is not None else ctx.subject.cls
    if view.function is None or analysis.is_pretrained(klass):
        return None
    returns = forward_returns(view.function)
    return returns or None


def _where(ctx: Context, returned: Returned) -> Location | None:
    view = ForwardView.of(ctx.subject)
    at = source_location(view.function)
    return Location(at.file, returned.line) if at else ctx.subject.location


def _at(site: Location | None) -> str:
    return f" ({site})" if site else ""


def _smoothing(ctx: Context) -> bool:
    """Label smoothing on, and a batch that carries `labels` (the forward names them): Trainer pops them."""
    return ctx.has(Feature.LABEL_SMOOTHING) and "labels" in ForwardView.of(ctx.subject).keyword_params


class LossMissingFromOutput(Rule):
    code = "TC104"
    name = "no-loss-in-output"
    severity = Severity.ERROR
    summary = "The forward visibly returns a dict without `loss`."
    explanation = (
        "Trainer's compute_loss reads `outputs['loss']` from a dict or `outputs[0]` from a tuple. A forward "
        "whose every return is a dict literal without a `loss` key fails with `The model did not return a "
        "loss from the inputs`. A Trainer subclass that overrides `compute_loss` decides for itself (silent). "
        "TC105 covers tuples and tensors; the probe (`--probe`) checks the rest."
    )
    fires = (Example(_HEAD + _FORWARD + "        return {\"logits\": out.logits}\n",
                     expect=Expect(Severity.ERROR, fragment="The model did not return a loss")),)
    silent = (Example(PASS_THROUGH), Example(DICT_WITH_LOGITS),
              Example(_HEAD + _FORWARD + "        return {\"logits\": out.logits}\n", trainer_code=OWN_COMPUTE_LOSS))

    def check(self, ctx: Context) -> Iterator[Finding]:
        returns = _applies(ctx)
        if not returns or _smoothing(ctx) or not all(r.kind == DICT for r in returns):
            return  # with label smoothing, the smoother computes the loss from the logits (TC106)
        if any(r.keys is None or "loss" in r.keys for r in returns):
            return
        keys = sorted(set().union(*(r.keys or () for r in returns)))
        where = _where(ctx, returns[0])
        site = ctx.site(_LOSS_SITE)
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__}.forward returns a dict with keys {keys} and no 'loss' ({_place(where)}): "
                 f"Trainer's compute_loss{_at(site)} raises 'The model did not return a loss from the inputs'",
            call_site=site,
            member="forward", feature=Feature.TRAIN, location=where,
            fix="compute the loss in forward when labels are given and return it under 'loss', or override "
                "compute_loss in a Trainer subclass and name it (`--trainer module:MyTrainer`)")


class LossNotFirst(Rule):
    code = "TC105"
    name = "loss-not-first"
    severity = Severity.ERROR
    summary = "The forward returns a tuple whose first element is not the loss, the logits, or a bare loss scalar."
    explanation = (
        "Trainer's compute_loss takes `outputs['loss']` from a dict or ModelOutput and `outputs[0]` from anything "
        "else. A tuple whose first element is not the loss (TRL's value head returns `(lm_logits, loss, value)`) or "
        "a bare logits tensor gives it the logits (of the first example): `backward()` raises 'grad can be "
        "implicitly created only for scalar outputs' (with one logit per example it silently trains on that "
        "logit). A bare 0-d loss raises IndexError 'invalid index of a 0-dim tensor'. With "
        "`label_smoothing_factor > 0`, Trainer pops `labels` and smooths `outputs[0]` as the logits: a logits-first "
        "tuple then trains, a bare tensor still fails. Return a dict / ModelOutput with `loss`, or a tuple with "
        "the loss first, or override `compute_loss` in a Trainer subclass (then this rule is silent)."
    )
    fires = (Example(VALUE_HEAD), Example(RETURNS_LOGITS), Example(RETURNS_LOSS),
             Example(RETURNS_LOGITS, args={"label_smoothing_factor": 0.1}))
    silent = (Example(LOSS_FIRST), Example(PASS_THROUGH), Example(DICT_WITH_LOGITS),
              Example(VALUE_HEAD, args={"label_smoothing_factor": 0.1}),
              Example(VALUE_HEAD, trainer_code=OWN_COMPUTE_LOSS),
              Example(RETURNS_LOGITS, trainer_code=OWN_COMPUTE_LOSS))

    def check(self, ctx: Context) -> Iterator[Finding]:
        returns = _applies(ctx)
        if not returns:
            return
        smoothing = _smoothing(ctx)
        wrong = [r for r in returns if _wrong_first(r, smoothing)]
        if len(wrong) != len(returns):
            return  # some return is (or may be) right: the probe decides
        returned = wrong[0]
        where = _where(ctx, returned)
        site = ctx.site(_SMOOTHER_SITE if smoothing else _LOSS_SITE)
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__}.forward returns `{returned.text}` ({_place(where)}); "
                 f"{_consequence(returned, smoothing)}{_at(site)}",
            member="forward", feature=Feature.LABEL_SMOOTHING if smoothing else Feature.TRAIN, call_site=site,
            location=where,
            fix="return a dict / ModelOutput with 'loss' (`return {\"loss\": loss, \"logits\": logits}`) or a tuple "
                "with the loss first, or override compute_loss in your Trainer subclass "
                "and name it (`--trainer module:MyTrainer`, `check(..., trainer=MyTrainer)`)")


def _wrong_first(returned: Returned, smoothing: bool) -> bool:
    if returned.kind in (LOGITS, LOSS):
        return True
    if returned.kind == TUPLE and not smoothing:
        return returned.first in (LOGITS, NONE)
    return False


def _consequence(returned: Returned, smoothing: bool) -> str:
    if smoothing:
        what = "a bare loss" if returned.kind == LOSS else "a bare logits tensor"
        return (f"with label_smoothing_factor > 0 Trainer pops labels and smooths outputs[0] of {what} as the "
                "logits: the first step raises (TypeError / RuntimeError size mismatch)")
    if returned.kind == LOSS:
        return ("Trainer's compute_loss takes outputs[0] of a 0-d loss: the first step raises IndexError "
                "'invalid index of a 0-dim tensor'")
    what = "the first example's logits" if returned.kind == LOGITS else f"the tuple's first element ({returned.first})"
    return (f"Trainer's compute_loss takes outputs[0], {what}, as the loss: backward raises 'grad can be implicitly "
            "created only for scalar outputs' (or, with one logit per example, trains on that logit)")


def _place(where: Location | None) -> str:
    return str(where) if where else "forward"


class LabelSmoothingOutput(Rule):
    code = "TC106"
    name = "label-smoothing-output"
    severity = Severity.ERROR
    summary = "With label smoothing, the forward's first output (or its `logits` key) is not the logits."
    explanation = (
        "With `label_smoothing_factor > 0` Trainer's compute_loss pops `labels` from the batch before calling the "
        "model and hands the output to its LabelSmoother, which reads `outputs['logits']` from a dict and "
        "`outputs[0]` from a tuple. A forward that returns `(out.loss, out.logits)` computed no loss without labels: "
        "`outputs[0]` is None and the first step raises AttributeError ('NoneType' object has no attribute "
        "'log_softmax'). A dict without 'logits' raises KeyError. Return a dict / ModelOutput with 'logits' (or a "
        "tuple with the logits first), or override compute_loss in a Trainer subclass."
    )
    fires = (Example(LOSS_FIRST, args={"label_smoothing_factor": 0.1}),
             Example(DICT_WITHOUT_LOGITS, args={"label_smoothing_factor": 0.1}))
    silent = (Example(LOSS_FIRST), Example(DICT_WITH_LOGITS, args={"label_smoothing_factor": 0.1}),
              Example(PASS_THROUGH, args={"label_smoothing_factor": 0.1}),
              Example(LOSS_FIRST, args={"label_smoothing_factor": 0.1}, trainer_code=OWN_COMPUTE_LOSS))

    def check(self, ctx: Context) -> Iterator[Finding]:
        if not _smoothing(ctx):
            return
        returns = _applies(ctx)
        if not returns:
            return
        if all(r.kind == TUPLE and r.first == LOSS for r in returns):
            consequence = ("outputs[0] is the loss, which the forward computes from labels: None, so the first step "
                           "raises AttributeError ('NoneType' object has no attribute 'log_softmax')")
        elif all(r.kind == DICT and r.keys is not None and "logits" not in r.keys for r in returns):
            consequence = "the dict has no 'logits': the first step raises KeyError 'logits'"
        else:
            return
        where = _where(ctx, returns[0])
        pop, smoother = ctx.site(_POP_SITE), ctx.site(_SMOOTHER_SITE)
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__}.forward returns `{returns[0].text}` ({_place(where)}); with "
                 f"label_smoothing_factor={ctx.setup.args.label_smoothing_factor} Trainer pops labels{_at(pop)} and "
                 f"its LabelSmoother reads the logits from the output{_at(smoother)}: {consequence}",
            member="forward", feature=Feature.LABEL_SMOOTHING, call_site=smoother or pop, location=where,
            fix="return a dict / ModelOutput with 'logits' (`return {\"loss\": loss, \"logits\": logits}`) or the "
                "logits first, drop label_smoothing_factor, or override compute_loss in your Trainer subclass "
                "and name it (`--trainer module:MyTrainer`, `check(..., trainer=MyTrainer)`)")
