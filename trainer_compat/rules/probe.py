"""Probe rules: what the dry-run through the real Trainer proved (or disproved)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from trainer_compat.example_models import DROPPING_WRAPPER, EXPLICIT_WRAPPER, KWARGS_WRAPPER, SWALLOWING_SHIM
from trainer_compat.features import Feature
from trainer_compat.findings import Finding, Severity
from trainer_compat.probe.attribution import invented_cause, invented_loss_problem, settle_hint, why_it_counts
from trainer_compat.protocol.data import ACCUMULATION_DIVIDED, LOSS_KWARGS_ANY_VAR_KEYWORD
from trainer_compat.rules.base import Context, Example, Rule
from trainer_compat.versions import VersionRange

_FROZEN_BASE = """
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.embed.weight.requires_grad_(False)  # frozen input embeddings, as with LoRA or freeze_llm
        self.block = nn.Linear(16, 16)
        self.head = nn.Linear(16, 100)
        self.gradient_checkpointing = False

    def gradient_checkpointing_enable(self, *args, **kwargs):
        self.gradient_checkpointing = True

    def forward(self, input_ids, labels=None):
        hidden = self.embed(input_ids)
        if self.gradient_checkpointing:
            hidden = checkpoint(self.block, hidden, use_reentrant=True)
        else:
            hidden = self.block(hidden)
        logits = self.head(hidden)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        return {"loss": loss, "logits": logits}
"""
_NOTHING_TO_BUILD = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 1)

    def forward(self, waveform, target=None):
        loss = (self.proj(waveform).squeeze(-1) - target).pow(2).mean()
        return {"loss": loss}
"""
_MARKER_LOOKUP = """
import torch
import torch.nn as nn
from trainer_compat.testing import tiny_encoder

class Model(nn.Module):
    \"\"\"Relation extraction: the head reads the hidden states at the entity-marker tokens.\"\"\"
    E1, E2 = 5, 6  # ids of the [E1] and [E2] markers the tokenizer adds

    def __init__(self):
        super().__init__()
        self.encoder = tiny_encoder()
        self.head = nn.Linear(2 * self.encoder.config.hidden_size, 3)

    def forward(self, input_ids, attention_mask=None, labels=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        rows = torch.arange(input_ids.shape[0])
        e1 = (input_ids == self.E1).nonzero()[:, 1].view(-1)[rows]  # IndexError when a row has no marker
        e2 = (input_ids == self.E2).nonzero()[:, 1].view(-1)[rows]
        logits = self.head(torch.cat([hidden[rows, e1], hidden[rows, e2]], dim=-1))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}
"""
_MARKER_DATA = """
import torch

def Data():
    ids = torch.tensor([7, 5, 9, 10, 6, 11, 12, 13])  # [E1] at 1, [E2] at 4
    return [{"input_ids": ids, "attention_mask": torch.ones(8, dtype=torch.long), "labels": torch.tensor(1)}] * 4
"""
_CHECKPOINTING = {"gradient_checkpointing": True}
_NO_CACHE_SHIM = EXPLICIT_WRAPPER.replace(
    "    def forward",
    SWALLOWING_SHIM.replace("self.model.gradient_checkpointing_enable(", "self.model.no_such_method(")
    + "    def forward")


def _phase_fix(phase: str) -> str:
    return {"Trainer()": "see the static findings above for the member Trainer() needs",
            "train": "see the static findings for the member or signature involved; rerun with --debug for the "
                     "traceback",
            "save_model": "make the state dict saveable with safetensors (untie/clone shared tensors)",
            "evaluate": "return a loss when labels are given, and a Mapping of outputs",
            "predict": "return only tensors (or declare config.keys_to_ignore_at_inference) and, for "
                       "predict_with_generate, a working generate()"}.get(phase, "see the exception")


class PhaseFailed(Rule):
    code = "TC601"
    name = "trainer-phase-failed"
    severity = Severity.ERROR
    summary = "A phase of the real Trainer raised during the dry-run."
    explanation = (
        "The probe builds the real Trainer (or Seq2SeqTrainer) with the given arguments on a tiny batch and "
        "runs one training step, then saves and reloads, and evaluates, predicts or generates where the "
        "arguments switch those on. Any exception is reported with the phase, the exception and the line "
        "that raised it. A failure that the probe's invented batch could explain (raised inside the forward on "
        "synthesized inputs) is not reported here but as inconclusive (TC609): pass your data to settle it."
    )
    fires = (Example(KWARGS_WRAPPER.replace("self.model(**kwargs)", "self.model(**kwargs).logits"),
                     args={"remove_unused_columns": False}, probe=True),)
    silent = (Example(EXPLICIT_WRAPPER, probe=True),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        if ctx.probe is None:
            return
        for failure in ctx.probe.failures:
            if invented_cause(failure, ctx.probe):
                continue
            unsaved = failure.phase == "save_model" and not (ctx.has(Feature.SAVE) or ctx.has(Feature.LOAD_BEST))
            unscheduled = failure.phase == "predict" and not ctx.has(Feature.PREDICT_WITH_GENERATE)
            optional = unsaved or unscheduled
            yield self.finding(
                ctx, f"{ctx.subject.cls.__name__}: Trainer {failure.describe()} ({why_it_counts(failure, ctx.probe)})",
                severity=Severity.WARNING if optional else Severity.ERROR, member=None,
                feature=_phase_feature(failure.phase), fix=_phase_fix(failure.phase), phase=failure.phase)


def _phase_feature(phase: str) -> Feature:
    return {"save_model": Feature.SAVE, "evaluate": Feature.EVAL, "predict": Feature.EVAL}.get(phase, Feature.TRAIN)


class InvalidLoss(Rule):
    code = "TC602"
    name = "invalid-loss"
    severity = Severity.ERROR
    summary = "The loss Trainer trained on is missing, not finite, or has no grad_fn."
    explanation = (
        "A loss without a grad_fn trains nothing; a NaN or infinite loss destroys the weights; a placeholder "
        "such as `logits.sum() * 0` hides a missing loss behind a zero. The probe reads what Trainer's "
        "compute_loss returned on the real step."
    )
    fires = (Example(EXPLICIT_WRAPPER.replace(
        "        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)",
        "        out = self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)\n"
        "        return {'loss': out.loss.detach(), 'logits': out.logits}"), probe=True),)
    silent = (Example(EXPLICIT_WRAPPER, probe=True),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        step = ctx.probe.step if ctx.probe else None
        if step is None or not step.losses:
            return
        loss = step.losses[0]
        problems = []
        finite = not hasattr(loss, "detach") or loss.numel() != 1 or math.isfinite(float(loss.detach().float()))
        if invented_loss_problem(ctx.probe, finite):
            return  # TC609 says so
        if not hasattr(loss, "detach") or loss.numel() != 1:
            shape = list(loss.shape) if hasattr(loss, "shape") else type(loss).__name__
            yield self.finding(ctx, f"{ctx.subject.cls.__name__}: the training loss is not a scalar ({shape}): "
                                    "Trainer took outputs[0] of what the forward returned",
                               member="forward", feature=Feature.TRAIN,
                               fix="return a dict with a scalar 'loss', or a tuple whose first element is the loss")
            return
        value = float(loss.detach().float())
        if not math.isfinite(value):
            problems.append(f"is {value}")
        if getattr(loss, "grad_fn", None) is None:
            problems.append("has no grad_fn (it was computed without autograd, or detached)")
        if problems:
            yield self.finding(ctx, f"{ctx.subject.cls.__name__}: the training loss {' and '.join(problems)}",
                               member="forward", feature=Feature.TRAIN,
                               fix="compute the loss from the model outputs with autograd on, without .detach()")


class MissingGradients(Rule):
    code = "TC603"
    name = "missing-gradients"
    severity = Severity.ERROR
    summary = "Trainable parameters that the forward used received no gradient on the real step."
    explanation = (
        "Reentrant checkpointing (the 4.x default) needs an input that requires grad: with frozen input "
        "embeddings (LoRA, freeze_llm) no gradient reaches the checkpointed blocks, and their trainable "
        "weights silently stay as they are. The probe records, for every trainable parameter of a module "
        "that ran, whether a gradient arrived. Use non-reentrant checkpointing "
        "(`gradient_checkpointing_kwargs={'use_reentrant': False}`) or `enable_input_require_grads()`."
    )
    fires = (Example(_FROZEN_BASE, args=_CHECKPOINTING, probe=True),)
    silent = (Example(_FROZEN_BASE.replace("use_reentrant=True", "use_reentrant=False"),
                      args=_CHECKPOINTING, probe=True),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        step = ctx.probe.step if ctx.probe else None
        model = ctx.subject.instance
        if step is None or model is None or ctx.probe.failure("train"):
            return
        from trainer_compat.probe.state import unique_parameters

        trainable = {n: n.rsplit(".", 1)[0] if "." in n else "" for n, p in unique_parameters(model).items()
                     if p.requires_grad}
        used = [n for n, owner in trainable.items() if owner in step.ran]
        without = sorted(n for n in used if n not in step.grad_norms)
        if not without:
            return
        everything = len(without) == len(used)
        serious = everything or ctx.has(Feature.CHECKPOINTING)
        shown = ", ".join(without[:6]) + (f" and {len(without) - 6} more" if len(without) > 6 else "")
        yield self.finding(
            ctx, f"{len(without)} of {len(used)} trainable parameters of modules that ran got no gradient: {shown}",
            severity=Severity.ERROR if serious else Severity.WARNING, member=None,
            feature=Feature.CHECKPOINTING if ctx.has(Feature.CHECKPOINTING) else Feature.TRAIN,
            fix="with checkpointing, pass gradient_checkpointing_kwargs={'use_reentrant': False} or call "
                "enable_input_require_grads(); otherwise make sure the loss depends on these parameters")


class CheckpointingIneffective(Rule):
    code = "TC604"
    name = "checkpointing-ineffective"
    severity = Severity.ERROR
    summary = "Checkpointing is switched on, but no module re-ran its forward during backward."
    explanation = (
        "Checkpointed blocks discard their activations and recompute them during backward. The probe "
        "counts forward calls made while autograd runs the backward pass: none means checkpointing is not "
        "in effect, whatever the flags or logs say (a shim that only sets `use_cache = False`, or that "
        "swallows the error of an inner model that cannot checkpoint)."
    )
    fires = (Example(_NO_CACHE_SHIM, args=_CHECKPOINTING, probe=True),)
    silent = (Example(EXPLICIT_WRAPPER.replace(
        "    def forward", "    def gradient_checkpointing_enable(self, *args, **kwargs):\n"
                          "        self.model.gradient_checkpointing_enable(*args, **kwargs)\n\n"
                          "    def forward"), args=_CHECKPOINTING, probe=True),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        probe = ctx.probe
        if probe is None or probe.step is None or not probe.checkpointing_requested or probe.failure("train"):
            return
        if probe.step.recomputed:
            return
        from trainer_compat.noop import describe_noop
        from trainer_compat.subject import Provenance

        info = ctx.subject.member("gradient_checkpointing_enable")
        noop = describe_noop(info.name, info.value, info.provenance is Provenance.DELEGATED) if info.present else None
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__}: checkpointing was switched on and the checkpointing call returned, "
                 "but no module re-ran its forward during backward: training keeps every activation"
                 + (f" ({noop})" if noop else ""),
            member="gradient_checkpointing_enable", feature=Feature.CHECKPOINTING,
            fix="delegate checkpointing to a model that implements it, and let its errors propagate")


class LossScaledByAccumulation(Rule):
    code = "TC605"
    name = "loss-scaled-by-accumulation"
    severity = Severity.ERROR
    summary = "With gradient accumulation, the logged loss or the gradient is not that of one plain batch."
    explanation = (
        "The probe trains one optimizer step over identical micro-batches (dropout re-seeded per forward) "
        "and compares the loss Trainer logs, and the accumulated gradient, with the loss and gradient of one "
        "micro-batch. They agree when either Trainer divides by the accumulation steps or the model normalises "
        "by num_items_in_batch; a forward that takes `**kwargs` and drops num_items_in_batch logs (and trains "
        "on) a loss that many times larger, and transformers before 4.48 never divides the gradient of a model "
        "that takes no loss kwargs, while its logged loss looks right."
    )
    fires = (Example(DROPPING_WRAPPER, args={"gradient_accumulation_steps": 2}, probe=True,
                     versions=VersionRange(since=LOSS_KWARGS_ANY_VAR_KEYWORD)),
             Example(DROPPING_WRAPPER.replace("**kwargs", "**loss_kwargs"), args={"gradient_accumulation_steps": 2},
                     probe=True),
             Example(EXPLICIT_WRAPPER, args={"gradient_accumulation_steps": 2}, probe=True,
                     versions=VersionRange(until=ACCUMULATION_DIVIDED)))
    silent = (Example(EXPLICIT_WRAPPER, args={"gradient_accumulation_steps": 2}, probe=True,
                      versions=VersionRange(since=ACCUMULATION_DIVIDED)),
              Example(EXPLICIT_WRAPPER, args={"gradient_accumulation_steps": 1}, probe=True))

    def check(self, ctx: Context) -> Iterator[Finding]:
        probe = ctx.probe
        if probe is None or probe.accumulation_steps < 2 or not probe.logged_loss or not probe.reference_loss:
            return
        steps, name = probe.accumulation_steps, ctx.subject.cls.__name__
        loss_ratio = probe.logged_loss / probe.reference_loss
        if abs(loss_ratio - 1) >= 0.3:
            yield self.finding(
                ctx, f"{name}: with gradient_accumulation_steps={steps} Trainer logged loss {probe.logged_loss:.4f}, "
                     f"but one micro-batch's loss is {probe.reference_loss:.4f} ({loss_ratio:.2f}x): the gradients "
                     "are scaled the same way",
                member="forward", feature=Feature.GRAD_ACCUM,
                fix="declare `accepts_loss_kwargs = False` on the wrapper, or pass num_items_in_batch on to a loss "
                    "that uses it")
            return
        grad_ratio = _grad_ratio(probe)
        if grad_ratio is not None and abs(grad_ratio - 1) >= 0.3:
            yield self.finding(
                ctx, f"{name}: with gradient_accumulation_steps={steps} the logged loss is right, but the "
                     f"accumulated gradient is {grad_ratio:.2f}x the gradient of one micro-batch: transformers "
                     f"{ctx.version} does not divide it by the accumulation steps for this model",
                member="forward", feature=Feature.GRAD_ACCUM,
                fix="upgrade transformers (4.48.1 or later divides), or take **loss_kwargs in forward and divide "
                    "the summed loss by num_items_in_batch")


def _grad_ratio(probe: Any) -> float | None:
    if probe.step is None or not probe.reference_grad_norm:
        return None
    return probe.step.accumulated_grad_norm / probe.reference_grad_norm


class ReloadMismatch(Rule):
    code = "TC606"
    name = "reload-mismatch"
    severity = Severity.ERROR
    summary = "The checkpoint save_model wrote does not reload into the model with equal weights."
    explanation = (
        "The probe saves through `Trainer.save_model` into a temporary directory and reads the weights back: "
        "every key of the model's state dict must be there, bitwise equal, or declared in "
        "`_keys_to_ignore_on_save`. A missing key loads back as random initialisation when training resumes."
    )
    fires = (Example(EXPLICIT_WRAPPER.replace(
        "    def forward", "    def state_dict(self, *args, **kwargs):\n"
                          "        state = super().state_dict(*args, **kwargs)\n"
                          "        state.pop('model.lm_head.weight', None)\n"
                          "        return state\n\n    def forward"), probe=True),)
    silent = (Example(EXPLICIT_WRAPPER, probe=True),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        probe = ctx.probe
        if probe is None or probe.failure("save_model"):
            return
        declared = ctx.subject.member("_keys_to_ignore_on_save")
        value = declared.value if declared.present else None  # a catch-all __getattr__ may hand back anything
        ignored = {str(k) for k in value} if isinstance(value, (list, tuple, set, frozenset)) else set()
        missing = [k for k in probe.reload_missing if k not in ignored]
        if missing and probe.adapter_only:
            yield self.finding(
                ctx, f"{ctx.subject.cls.__name__}: {len(missing)} trainable parameters outside the adapter and "
                     f"modules_to_save ({', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}) are trained "
                     "but save_model writes only the adapter checkpoint: their training is lost",
                member="state_dict", feature=Feature.SAVE,
                fix="list those modules in LoraConfig(modules_to_save=[...]) instead of unfreezing them by hand")
            return
        if missing or probe.reload_mismatched:
            parts = []
            if missing:
                parts.append(f"missing from the checkpoint: {', '.join(missing[:5])}")
            if probe.reload_mismatched:
                parts.append(f"different after reload: {', '.join(probe.reload_mismatched[:5])}")
            yield self.finding(ctx, f"{ctx.subject.cls.__name__}: save_model then reload: " + "; ".join(parts),
                               member="state_dict", feature=Feature.SAVE,
                               fix="save every tensor the model needs, or list re-derivable ones in "
                                   "_keys_to_ignore_on_save and restore them in tie_weights()")


class NoEvalLoss(Rule):
    code = "TC607"
    name = "no-eval-loss"
    severity = Severity.ERROR
    summary = "evaluate() returned no eval_loss although the model trains on a loss."
    explanation = (
        "With labels in the batch, `evaluate()` should report `eval_loss`; without it `metric_for_best_model="
        "'loss'` raises KeyError and nothing tells you the model is not learning. The probe runs the real "
        "evaluate() on the tiny batch."
    )
    fires = (Example(KWARGS_WRAPPER, args={"eval_strategy": "steps", "remove_unused_columns": False}, probe=True),)
    silent = (Example(EXPLICIT_WRAPPER, args={"eval_strategy": "steps"}, probe=True),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        probe = ctx.probe
        if probe is None or probe.eval_metrics is None or "eval_loss" in probe.eval_metrics:
            return
        trained_on_a_loss = probe.step is not None and bool(probe.step.losses)
        if not (probe.inputs.has_labels or trained_on_a_loss):
            return
        yield self.finding(
            ctx, f"{ctx.subject.cls.__name__}: evaluation is switched on and the model trains on a loss, but "
                 f"evaluate() returned {sorted(probe.eval_metrics)} and no eval_loss"
                 + ("; load_best_model_at_end then fails with KeyError" if ctx.has(Feature.LOAD_BEST) else ""),
            member="forward", feature=Feature.EVAL,
            fix="name the label parameter in forward (and give the data that key), or set label_names to keys the "
                "batch holds; for a loss without labels, accept `return_loss` in forward")


class ProbeLeftTrace(Rule):
    code = "TC608"
    name = "probe-left-trace"
    severity = Severity.ERROR
    summary = "The dry-run left a trace: on the model (a bug in trainer-compat), or in state the forward shares."
    explanation = (
        "After the dry-run the model and the process must be as they were: parameters, buffers, gradients, "
        "requires_grad, modes, checkpointing flags, hooks, the module structure, every module's Python attributes "
        "(lists, dicts, config and generation_config, deeply), RNG streams, torch's global flags (deterministic "
        "algorithms, cudnn, grad mode, default dtype), the environment and accelerate's state. What is not is an "
        "error (please report it). State the forward changes outside the instance (a class attribute shared by "
        "every instance, a global of the module defining the model) is not rolled back: a warning names it. What "
        "the probe could not snapshot or compare (a tensor type that refuses) is listed as not proven (info). The "
        "promise is checked on every run.")
    fires = (Example(EXPLICIT_WRAPPER.replace("class Model(nn.Module):", "class Model(nn.Module):\n    calls = 0\n")
                     .replace(
        "    def forward(self, input_ids, attention_mask=None, labels=None):",
        "    def forward(self, input_ids, attention_mask=None, labels=None):\n"
        "        type(self).calls += 1  # shared by every instance: reported, not rolled back"), probe=True),)
    silent = (Example(EXPLICIT_WRAPPER, args=_CHECKPOINTING, probe=True),
              Example(EXPLICIT_WRAPPER.replace(
                  "    def forward(self, input_ids, attention_mask=None, labels=None):",
                  "    def forward(self, input_ids, attention_mask=None, labels=None):\n"
                  "        self.seen = getattr(self, 'seen', []) + [input_ids.shape[0]]  # rolled back\n"
                  "        self.model.config.history = [*getattr(self.model.config, 'history', []), 1]"), probe=True))

    def check(self, ctx: Context) -> Iterator[Finding]:
        probe = ctx.probe
        if probe is None:
            return
        if probe.leftovers:
            yield self.finding(ctx, f"the probe left changes on the model: {', '.join(probe.leftovers[:8])}",
                               feature=Feature.TRAIN)
        if probe.outside:
            yield self.finding(
                ctx, f"the dry-run's forward changed state outside the model, which the probe does not roll back: "
                     f"{', '.join(probe.outside[:8])}", severity=Severity.WARNING, feature=Feature.TRAIN,
                fix="keep per-run state on the instance (self.x), not on the class or in a global, or reset it after "
                    "check()")
        if probe.unverified:
            yield self.finding(
                ctx, f"the probe restored but could not compare: {', '.join(probe.unverified[:8])}",
                severity=Severity.INFO, feature=Feature.TRAIN, fix="nothing to do; these were not proven unchanged")


class ProbeSkipped(Rule):
    code = "TC600"
    name = "probe-skipped"
    severity = Severity.WARNING
    summary = "The probe could not run: no instance, no inputs it could build, or a model it could not snapshot."
    explanation = ("The probe builds one example from the forward signature, `main_input_name` and the config's "
                   "sizes. When it cannot (a forward that takes unnamed tensors, inputs of unknown shape), pass a "
                   "sample: `--sample file.pt|.json` or `sample=` in the API.")
    fires = (Example(_NOTHING_TO_BUILD, probe=True),)
    silent = (Example(EXPLICIT_WRAPPER, probe=True),)

    def check(self, ctx: Context) -> Iterator[Finding]:
        if ctx.probe is not None and ctx.probe.not_run:
            yield self.finding(ctx, f"probe not run: {ctx.probe.not_run}", feature=Feature.TRAIN,
                               fix="make the model's modules plain attributes the probe can copy, or check it "
                                   "without --probe")
            return
        if ctx.probe is None or ctx.probe.inputs.available:
            return
        yield self.finding(ctx, f"probe skipped: {ctx.probe.inputs.source}", feature=Feature.TRAIN,
                           fix="pass --sample file.pt|.json (one example: a mapping of input names to tensors)")


class ProbeInconclusive(Rule):
    code = "TC609"
    name = "probe-inconclusive"
    severity = Severity.INFO
    summary = "The dry-run failed on inputs the probe invented: the failure says nothing yet about your run."
    explanation = (
        "Without your data the probe synthesizes a batch from what the model declares (the forward's inputs, "
        "the inner models' main_input_name, token ids and sizes from their configs, labels shaped by the "
        "head). A failure that the invention could explain (raised inside the forward: input validation, a "
        "shape or an index; or a missing loss while optional inputs were left out) is reported here, never as "
        "an error, with what was tried. It does not fail the gate. Pass your data (`--data module:make_dataset`, "
        "`data=` in the API, or `preflight(trainer)`) or one example (`--sample`) to settle it."
    )
    fires = (Example(_MARKER_LOOKUP, probe=True),)
    silent = (Example(EXPLICIT_WRAPPER, probe=True),
              Example(_MARKER_LOOKUP, probe=True, data=_MARKER_DATA))

    def check(self, ctx: Context) -> Iterator[Finding]:
        probe = ctx.probe
        if probe is None:
            return
        for failure in probe.failures:
            cause = invented_cause(failure, probe)
            if cause:
                yield self.finding(
                    ctx, f"inconclusive: {ctx.subject.cls.__name__}: Trainer {failure.describe()}; {cause}",
                    member=None, feature=_phase_feature(failure.phase), fix=settle_hint(), phase=failure.phase,
                    inconclusive=True, tried=probe.inputs.source)
        step = probe.step
        if step is not None and step.losses and hasattr(step.losses[0], "detach") and step.losses[0].numel() == 1:
            finite = math.isfinite(float(step.losses[0].detach().float()))
            cause = invented_loss_problem(probe, finite)
            bad = not finite or getattr(step.losses[0], "grad_fn", None) is None
            if cause and bad:
                yield self.finding(
                    ctx, f"inconclusive: {ctx.subject.cls.__name__}: the training loss is "
                         f"{'not finite' if not finite else 'not differentiable'}; {cause}",
                    member="forward", feature=Feature.TRAIN, fix=settle_hint(), inconclusive=True,
                    tried=probe.inputs.source)
