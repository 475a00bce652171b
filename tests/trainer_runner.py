"""Run the real Trainer / Seq2SeqTrainer for two steps and say what happened: ok, failed, or silently wrong.

A profile is a set of TrainingArguments fields; the run adds only run-scale fields (two steps, batch 2, CPU,
every scheduled save / evaluation / log at every step, so each event the arguments schedule happens within the
run). The check gets the same fields. Failures are exceptions, with the phase they happened in. Silent failures
are observed, never assumed:

* every run: some trainable parameter changed, and the logged losses are finite;
* gradient accumulation: the first step's loss and gradient norm match a run with accumulation 1 and a batch as
  large as the accumulated one, on the same samples (an N-times inflated loss or gradient is wrong);
* checkpointing: ``torch.utils.checkpoint`` really runs during training, and every parameter that a run without
  checkpointing updates is updated too (no parameter loses its gradient);
* evaluation: it ran, and reports ``eval_loss`` (the data carries labels);
* saving: every checkpoint directory holds model weights; load_best_model_at_end records a best checkpoint;
* generation: evaluate() and predict() return generated token ids, not logits.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

VOCAB = 100
SEQ = 8
ROWS = 16
RATIO_LIMIT = 1.5  # a loss or gradient norm off by more than this factor is wrong, not noise (dropout)

RUN_SCALE: dict[str, Any] = {
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "per_device_eval_batch_size": 2,
    "logging_steps": 1,
    "save_steps": 1,
    "eval_steps": 1,
    "seed": 0,
    "report_to": "none",
    "disable_tqdm": True,
    "use_cpu": True,
    "dataloader_num_workers": 0,
}


@dataclass(frozen=True)
class Profile:
    name: str
    args: dict[str, Any]
    trainers: tuple[str, ...] = ("trainer", "seq2seq")
    dataset: str = "list"  # "list": a list of dicts of tensors; "datasets": a datasets.Dataset
    predict: bool = False  # call predict() after training
    needs: tuple[str, ...] = ()

    def fields(self) -> dict[str, Any]:
        """The TrainingArguments fields of the run (and of the check)."""
        return {**RUN_SCALE, **self.args}


@dataclass
class Outcome:
    status: str  # "ok", "failed" or "silent" (ran to the end, but did the wrong thing)
    phase: str = ""
    error: str = ""
    observations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __str__(self) -> str:
        if self.status == "failed":
            return f"FAILED in {self.phase}: {self.error}"
        if self.status == "silent":
            return "SILENTLY WRONG: " + "; ".join(self.observations)
        return "ok" + (f" ({'; '.join(self.observations)})" if self.observations else "")


# --- data ------------------------------------------------------------------------------------------------


def rows(trainer: str, n: int = ROWS, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """input_ids / attention_mask / labels of length 8 over a vocabulary of 100 (ids from 2: 0 and 1 are special)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(2, VOCAB, (SEQ,), generator=g)
        labels = ids.clone() if trainer == "trainer" else torch.randint(2, VOCAB, (SEQ,), generator=g)
        out.append({"input_ids": ids, "attention_mask": torch.ones(SEQ, dtype=torch.long), "labels": labels})
    return out


def dataset(trainer: str, kind: str, n: int = ROWS, seed: int = 0) -> Any:
    data = rows(trainer, n, seed)
    if kind == "list":
        return data
    datasets = pytest.importorskip("datasets", reason="this profile feeds a datasets.Dataset")
    return datasets.Dataset.from_list([{k: v.tolist() for k, v in row.items()} for row in data])


# --- observation helpers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def count_checkpoints() -> Iterator[list[int]]:
    """Count entries into torch.utils.checkpoint (both implementations), however the model imported it."""
    import torch.utils.checkpoint as cp

    counter = [0]
    original_generator = cp._checkpoint_without_reentrant_generator
    original_apply = cp.CheckpointFunction.apply
    own_apply = "apply" in vars(cp.CheckpointFunction)

    def generator(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return original_generator(*args, **kwargs)

    def apply(*args: Any) -> Any:
        counter[0] += 1
        return original_apply(*args)

    cp._checkpoint_without_reentrant_generator = generator
    cp.CheckpointFunction.apply = staticmethod(apply)
    try:
        yield counter
    finally:
        cp._checkpoint_without_reentrant_generator = original_generator
        if own_apply:
            cp.CheckpointFunction.apply = original_apply
        else:
            del cp.CheckpointFunction.apply


@dataclass
class Trace:
    """What one Trainer run did."""

    failed_in: str = ""
    error: str = ""
    log_history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint_calls: int = 0
    trainable: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    eval_prediction_dtypes: list[str] = field(default_factory=list)
    predict_dtype: str | None = None
    checkpoints: dict[str, list[str]] = field(default_factory=dict)
    best_checkpoint: str | None = None

    def first_step(self, key: str) -> float | None:
        for entry in self.log_history:
            if entry.get("step") == 1 and key in entry:
                return float(entry[key])
        return None

    @property
    def evaluations(self) -> list[dict[str, Any]]:
        return [e for e in self.log_history if any(k.startswith("eval_") for k in e)]


class _Phase:
    def __init__(self) -> None:
        self.current = "Trainer()"
        self.failed_in = ""

    def track(self, obj: Any, method: str, phase: str) -> None:
        original = getattr(obj, method)

        def tracked(*args: Any, **kwargs: Any) -> Any:
            previous, self.current = self.current, phase
            try:
                return original(*args, **kwargs)
            except BaseException:
                self.failed_in = self.failed_in or phase
                raise
            finally:
                self.current = previous

        setattr(obj, method, tracked)


_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json", "adapter_model.safetensors", "adapter_model.bin")


def _compute_metrics(trace: Trace) -> Callable[[Any], dict[str, float]]:
    def compute(prediction: Any) -> dict[str, float]:
        preds = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        trace.eval_prediction_dtypes.append(str(np.asarray(preds).dtype))
        return {"prediction_width": float(np.asarray(preds).shape[-1])}

    return compute


def execute(factory: Callable[[], nn.Module], trainer: str, fields: dict[str, Any], workdir: Path, *,
            data: str = "list", predict: bool = False) -> Trace:
    """Build the model, run the Trainer on it, and record what happened."""
    import transformers

    trace = Trace()
    transformers.set_seed(0)
    model = factory()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trace.trainable = set(before)
    args_cls = transformers.Seq2SeqTrainingArguments if trainer == "seq2seq" else transformers.TrainingArguments
    trainer_cls = transformers.Seq2SeqTrainer if trainer == "seq2seq" else transformers.Trainer
    args = args_cls(output_dir=str(workdir), **fields)
    evaluates = str(getattr(args.eval_strategy, "value", args.eval_strategy)) != "no"
    phase = _Phase()
    with warnings.catch_warnings(), count_checkpoints() as counter:
        warnings.simplefilter("ignore")
        try:
            run = trainer_cls(
                model=model, args=args, train_dataset=dataset(trainer, data),
                eval_dataset=dataset(trainer, data, n=4, seed=1) if evaluates else None,
                compute_metrics=_compute_metrics(trace) if getattr(args, "predict_with_generate", False) else None,
            )
            for method, name in (("training_step", "training step"), ("evaluate", "evaluation"),
                                 ("_save_checkpoint", "saving a checkpoint"),
                                 ("_load_best_model", "loading the best model")):
                phase.track(run, method, name)
            phase.current = "train()"
            run.train()
            trace.checkpoint_calls = counter[0]
            trace.log_history = list(run.state.log_history)
            trace.best_checkpoint = run.state.best_model_checkpoint
            if predict:
                phase.current = "predict()"
                out = run.predict(dataset(trainer, data, n=4, seed=2))
                preds = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
                trace.predict_dtype = str(np.asarray(preds).dtype)
        except Exception as exc:  # the outcome under test: any failure of the real Trainer
            return record_failure(trace, phase, exc)
    return record_result(trace, model, before, workdir)


def record_failure(trace: Trace, phase: _Phase, exc: Exception) -> Trace:
    """The phase the run failed in, and the exception's first line."""
    trace.failed_in = phase.failed_in or phase.current
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    trace.error = f"{type(exc).__name__}: {message[:300]}"
    return trace


def record_result(trace: Trace, model: nn.Module, before: dict[str, torch.Tensor], workdir: Path) -> Trace:
    """Which trainable parameters the run changed, and what each checkpoint directory holds."""
    after = dict(model.named_parameters())
    trace.updated = {n for n, p in before.items() if n in after and not torch.equal(p, after[n].detach())}
    trace.checkpoints = {d.name: sorted(f.name for f in d.iterdir())
                         for d in sorted(workdir.glob("checkpoint-*")) if d.is_dir()}
    return trace


# --- verdicts --------------------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _off(ratio: float | None) -> bool:
    return ratio is not None and not (1 / RATIO_LIMIT < ratio < RATIO_LIMIT)


def _own_observations(trace: Trace, fields: dict[str, Any], args: Any, predict: bool) -> list[str]:
    return [*_training_observations(trace), *_evaluation_observations(trace, args),
            *_saving_observations(trace, args), *_generation_observations(trace, args, predict)]


def _training_observations(trace: Trace) -> list[str]:
    found = []
    losses = [e["loss"] for e in trace.log_history if "loss" in e]
    if not losses:
        found.append("no training loss was logged")
    elif not all(math.isfinite(float(x)) for x in losses):
        found.append(f"logged losses are not finite: {losses}")
    if trace.trainable and not trace.updated:
        found.append(f"none of the {len(trace.trainable)} trainable parameters changed")
    return found


def _evaluation_observations(trace: Trace, args: Any) -> list[str]:
    found = []
    if str(getattr(args.eval_strategy, "value", args.eval_strategy)) != "no":
        if not trace.evaluations:
            found.append("evaluation was scheduled but never ran")
        elif any("eval_loss" not in e for e in trace.evaluations):
            found.append("evaluation reported no eval_loss although every example has labels")
    return found


def _saving_observations(trace: Trace, args: Any) -> list[str]:
    found = []
    if str(getattr(args.save_strategy, "value", args.save_strategy)) != "no":
        if not trace.checkpoints:
            found.append("saving was scheduled but no checkpoint directory was written")
        for name, files in trace.checkpoints.items():
            if not any(f in files for f in _WEIGHT_FILES):
                found.append(f"{name} holds no model weights ({', '.join(files)})")
        if args.load_best_model_at_end and not trace.best_checkpoint:
            found.append("load_best_model_at_end recorded no best checkpoint")
    return found


def _generation_observations(trace: Trace, args: Any, predict: bool) -> list[str]:
    found = []
    if getattr(args, "predict_with_generate", False):
        if any(not np.issubdtype(np.dtype(d), np.integer) for d in trace.eval_prediction_dtypes):
            found.append(f"evaluation predictions are {trace.eval_prediction_dtypes}, not generated token ids")
        if predict and trace.predict_dtype and not np.issubdtype(np.dtype(trace.predict_dtype), np.integer):
            found.append(f"predict() returned {trace.predict_dtype} predictions, not generated token ids")
    return found


def _quiet(fields: dict[str, Any]) -> dict[str, Any]:
    """The same run with no saving, evaluation or generation: the baseline for a comparison."""
    quiet = dict(fields, save_strategy="no", eval_strategy="no", load_best_model_at_end=False)
    quiet.pop("predict_with_generate", None)
    return quiet


def _accumulation_observations(trace: Trace, reference: Trace, steps: int) -> list[str]:
    found = []
    for key in ("loss", "grad_norm"):
        ratio = _ratio(trace.first_step(key), reference.first_step(key))
        if _off(ratio):
            found.append(f"with gradient_accumulation_steps={steps} the first step's {key} is {ratio:.2f}x the "
                         f"{key} of an unaccumulated run on the same samples ({trace.first_step(key):.3f} vs "
                         f"{reference.first_step(key):.3f})")
    return found


def _checkpointing_observations(trace: Trace, reference: Trace) -> list[str]:
    found = []
    if trace.checkpoint_calls == 0:
        found.append("gradient checkpointing is on, but torch.utils.checkpoint never ran during training")
    lost = sorted(reference.updated - trace.updated)
    if lost:
        found.append(f"{len(lost)} parameters that train without checkpointing got no update with it "
                     f"(e.g. {', '.join(lost[:3])})")
    ratio = _ratio(trace.first_step("loss"), reference.first_step("loss"))
    if _off(ratio):
        found.append(f"the first step's loss is {ratio:.2f}x the loss without checkpointing")
    return found


def run(factory: Callable[[], nn.Module], trainer: str, profile: Profile, workdir: Path) -> Outcome:
    """Train ``factory()`` under ``profile`` with the real Trainer and classify what happened."""
    import transformers

    fields = profile.fields()
    trace = execute(factory, trainer, fields, workdir / "run", data=profile.dataset, predict=profile.predict)
    if trace.error:
        return Outcome("failed", trace.failed_in, trace.error)
    args_cls = transformers.Seq2SeqTrainingArguments if trainer == "seq2seq" else transformers.TrainingArguments
    args = args_cls(output_dir=str(workdir / "unused"), **fields)
    found = _own_observations(trace, fields, args, profile.predict)
    steps = int(args.gradient_accumulation_steps)
    if steps > 1:
        batch = int(args.per_device_train_batch_size) * steps
        reference = execute(factory, trainer, dict(_quiet(fields), gradient_accumulation_steps=1,
                                                   per_device_train_batch_size=batch),
                            workdir / "reference-accumulation", data=profile.dataset)
        if reference.error:
            return Outcome("failed", "reference run", f"the unaccumulated reference run failed: {reference.error}")
        found += _accumulation_observations(trace, reference, steps)
    if args.gradient_checkpointing or getattr(args, "activation_checkpointing", False):
        reference = execute(factory, trainer, dict(_quiet(fields), gradient_checkpointing=False),
                            workdir / "reference-checkpointing", data=profile.dataset)
        if reference.error:
            return Outcome("failed", "reference run", f"the reference run without checkpointing failed: "
                                                      f"{reference.error}")
        found += _checkpointing_observations(trace, reference)
    return Outcome("silent", observations=found) if found else Outcome("ok")
