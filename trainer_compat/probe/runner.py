"""Run the real Trainer on one tiny batch, phase by phase, and record what really happened.

The model is snapshotted first and restored in ``finally``; everything is written under a temporary
directory that is removed. The observations feed the probe rules (rules/probe.py).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainer_compat.features import Feature, TrainingSetup
from trainer_compat.probe.batch import Inputs, complete_labels
from trainer_compat.probe.observe import StepObservations, observe
from trainer_compat.probe.saved import save_and_reload
from trainer_compat.probe.state import ModelState, parameters, unique_parameters
from trainer_compat.subject import Subject

if TYPE_CHECKING:
    from trainer_compat.render.progress import PhaseProgress

_SEED = 1234
# What a person watching a slow dry-run is told (render/progress.py, TTY only).
_SHOWN = {"Trainer()": "building the Trainer", "train": "training step", "reference step": "reference step",
          "save_model": "checkpoint save and reload", "evaluate": "evaluate", "predict": "predict"}
# Features the probe cannot exercise on one process: they are switched off and reported as skipped.
_NOT_PROBED = {"fsdp": "", "deepspeed": None, "torch_compile": False}


@dataclass(frozen=True)
class PhaseFailure:
    phase: str
    exception: str
    message: str
    where: str | None  # file:line of the innermost frame outside torch
    in_forward: bool = False  # raised while a module's forward ran (where invented inputs can be the cause)
    building: bool = False  # raised while building the user's Trainer subclass with the probe's arguments

    def describe(self) -> str:
        at = f" at {self.where}" if self.where else ""
        return f"{self.phase} raised {self.exception}: {self.message}{at}"


@dataclass
class ProbeObservations:
    inputs: Inputs
    failures: list[PhaseFailure] = field(default_factory=list)
    step: StepObservations | None = None
    logged_loss: float | None = None
    reference_loss: float | None = None
    reference_grad_norm: float | None = None  # |grad| of one micro-batch's loss, no accumulation
    accumulation_steps: int = 1
    checkpointing_requested: bool = False
    saved_files: list[str] = field(default_factory=list)
    reload_missing: list[str] = field(default_factory=list)
    reload_mismatched: list[str] = field(default_factory=list)
    adapter_only: bool = False  # save_model wrote a PEFT adapter checkpoint (adapter and modules_to_save)
    eval_metrics: dict[str, Any] | None = None
    predicted: bool = False
    generated: bool = False
    leftovers: list[str] = field(default_factory=list)  # what the probe failed to restore (never expected)
    unverified: list[str] = field(default_factory=list)  # what it could not snapshot or compare, hence not proven
    outside: list[str] = field(default_factory=list)  # state outside the model the forward changed (not rolled back)
    not_run: str | None = None  # why the dry-run did not run at all, although it had inputs
    skipped: list[str] = field(default_factory=list)

    def failure(self, phase: str) -> PhaseFailure | None:
        return next((f for f in self.failures if f.phase == phase), None)


def probe(subject: Subject, setup: TrainingSetup, inputs: Inputs, progress_stream: Any = None) -> ProbeObservations:
    if setup.trainer in ("sft", "dpo", "reward", "grpo"):
        from trainer_compat.errors import UsageError
        from trainer_compat.trainer_class import TRL_KINDS

        raise UsageError(f"--probe dry-runs transformers' Trainer, not TRL's {TRL_KINDS[setup.trainer][0]} (it needs "
                         f"TRL's own data format): drop it for --trainer {setup.trainer}")
    seen = ProbeObservations(inputs=inputs, accumulation_steps=max(1, setup.gradient_accumulation_steps),
                             checkpointing_requested=setup.has(Feature.CHECKPOINTING))
    model = subject.instance
    if model is None or not inputs.available:
        return seen
    try:
        snapshot = ModelState.capture(model)
    except Exception as exc:  # without a snapshot there is no promise to keep: do not touch the model
        seen.not_run = f"the model's state could not be snapshotted ({type(exc).__name__}: {exc})"
        return seen
    from trainer_compat.render.progress import PhaseProgress  # after the snapshot: importing rich draws from random

    # the phases on stderr when it is a terminal; an isolated child's stream relays them to its parent's
    progress = PhaseProgress(subject.target, stream=progress_stream, enabled=True if progress_stream else None)
    try:
        _probe_and_restore(model, setup, inputs, seen, snapshot=snapshot, progress=progress)
    finally:
        progress.close()
    return seen


def _probe_and_restore(model: nn.Module, setup: TrainingSetup, inputs: Inputs, seen: ProbeObservations, *,
                       snapshot: ModelState, progress: PhaseProgress) -> None:
    devices = {n: p.device for n, p in parameters(model).items()}
    workdir = Path(tempfile.mkdtemp(prefix="trainer-compat-probe-"))
    try:
        with _quiet():
            seen.inputs = inputs = complete_labels(model, inputs)
            _run_phases(model, setup, inputs, seen, workdir, progress=progress)
    finally:
        progress.phase("restoring the model")
        try:
            _move_back(model, devices)
            snapshot.restore(model)
        except Exception as exc:  # reported below, with whatever stayed different
            seen.leftovers.append(f"restoring raised {type(exc).__name__}: {exc}")
        shutil.rmtree(workdir, ignore_errors=True)
    seen.leftovers += snapshot.differences(model)
    seen.unverified = list(dict.fromkeys(snapshot.unverified))
    seen.outside = snapshot.outside_differences()


def _run_phases(model: nn.Module, setup: TrainingSetup, inputs: Inputs, seen: ProbeObservations,
                workdir: Path, *, progress: PhaseProgress) -> None:
    def _phase(seen: ProbeObservations, phase: str, action: Callable[[], Any]) -> Any:
        progress.phase(_SHOWN.get(phase, phase))
        return _run_phase(seen, phase, action)

    trainer = _phase(seen, "Trainer()", lambda: _build_trainer(model, setup, inputs, seen, workdir))
    if trainer is None:
        return
    with observe(model) as step, _seeded_forward(model):
        _capture_losses(trainer, step)
        result = _phase(seen, "train", trainer.train)
    seen.step = step
    if result is not None:
        seen.logged_loss = float(result.training_loss)
    if result is not None and seen.accumulation_steps > 1:  # what accumulation is compared with (TC605)
        reference = _phase(seen, "reference step", lambda: _reference_step(trainer, model, inputs))
        if reference is not None:
            seen.reference_loss, seen.reference_grad_norm = reference
    _phase(seen, "save_model", lambda: save_and_reload(trainer, model, workdir / "saved", seen))
    if setup.has(Feature.EVAL) or setup.has(Feature.PREDICT_WITH_GENERATE):
        dataset = inputs.rows(2)
        seen.eval_metrics = _phase(seen, "evaluate", lambda: trainer.evaluate(eval_dataset=dataset))
        seen.predicted = _phase(seen, "predict", lambda: trainer.predict(dataset)) is not None
        seen.generated = seen.predicted and setup.has(Feature.PREDICT_WITH_GENERATE)


def _run_phase(seen: ProbeObservations, phase: str, action: Callable[[], Any]) -> Any:
    try:
        return action()
    except Exception as exc:
        text = str(exc).strip()
        seen.failures.append(PhaseFailure(phase, type(exc).__name__, text.splitlines()[0][:300] if text else "",
                                          _innermost(exc), in_forward=_through_forward(exc),
                                          building=isinstance(exc, _BuildError)))
        return None


class _BuildError(Exception):
    """The user's Trainer subclass could not be built with the probe's arguments (not the model's fault)."""


def _through_forward(exc: BaseException) -> bool:
    """The exception passed through a module call: it was raised inside some forward."""
    module_file = nn.Module.__call__.__code__.co_filename
    return any(frame.filename == module_file and frame.name in ("_call_impl", "_wrapped_call_impl")
               for frame in traceback.extract_tb(exc.__traceback__))


def _innermost(exc: BaseException) -> str | None:
    """The deepest Trainer frame (where transformers made the call), else the deepest non-torch one."""
    frames = traceback.extract_tb(exc.__traceback__)
    in_transformers = [f for f in frames if f"{os.sep}transformers{os.sep}" in f.filename]
    others = [f for f in frames if f"{os.sep}torch{os.sep}" not in f.filename and "trainer_compat" not in f.filename]
    candidates = in_transformers or others
    if not candidates:
        return None
    frame = candidates[-1]
    parts = Path(frame.filename).parts
    shown = "/".join(parts[parts.index("site-packages") + 1:]) if "site-packages" in parts else frame.filename
    return f"{shown}:{frame.lineno}"


def _probe_args(setup: TrainingSetup, inputs: Inputs, workdir: Path) -> Any:
    args = setup.args
    batch = max(1, min(2, int(args.per_device_train_batch_size)))
    overrides: dict[str, Any] = dict(
        output_dir=str(workdir / "out"), max_steps=1, logging_steps=1, learning_rate=0.0, warmup_steps=0,
        per_device_train_batch_size=batch, per_device_eval_batch_size=batch, save_strategy="no",
        load_best_model_at_end=False, push_to_hub=False, report_to=[], disable_tqdm=True,
        dataloader_num_workers=0, dataloader_pin_memory=False, resume_from_checkpoint=None,
        logging_dir=str(workdir / "logs"),
    )
    fields = {f.name for f in dataclasses.fields(args)}
    for name in ("eval_strategy", "evaluation_strategy"):
        if name in fields:
            overrides[name] = "no"
    for name, value in _NOT_PROBED.items():
        if name in fields and getattr(args, name):
            overrides[name] = value
    if "fsdp_config" in fields and getattr(args, "fsdp", None):
        overrides["fsdp_config"] = None
    return dataclasses.replace(args, **{k: v for k, v in overrides.items() if k in fields})


def _build_trainer(model: nn.Module, setup: TrainingSetup, inputs: Inputs, seen: ProbeObservations,
                   workdir: Path) -> Any:
    import transformers

    args = _probe_args(setup, inputs, workdir)
    for name in ("fsdp", "deepspeed", "torch_compile"):
        if setup.has(Feature(name)):
            seen.skipped.append(f"{name}: not exercised by the single-process probe")
    copies = args.per_device_train_batch_size * max(1, args.gradient_accumulation_steps)
    stock = transformers.Seq2SeqTrainer if setup.trainer == "seq2seq" else transformers.Trainer
    cls = setup.trainer_class or stock
    kwargs: dict[str, Any] = dict(model=model, args=args, train_dataset=inputs.rows(copies))
    if setup.collator is not None:
        kwargs["data_collator"] = setup.collator
    kwargs.update(setup.trainer_kwargs or {})
    try:
        trainer = cls(**kwargs)
    except TypeError as exc:
        if cls is stock:
            raise
        raise _BuildError(f"{cls.__name__}(model=, args=, train_dataset=...) raised TypeError: {exc}") from exc
    for callback in (transformers.trainer_callback.PrinterCallback, transformers.trainer_callback.ProgressCallback):
        trainer.remove_callback(callback)  # the probe's step must not print into the report
    return trainer


def _capture_losses(trainer: Any, step: StepObservations) -> None:
    original = trainer.compute_loss

    def compute_loss(model: nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        result = original(model, inputs, *args, **kwargs)
        loss = result[0] if isinstance(result, tuple) else result
        step.losses.append(loss)
        return result

    trainer.compute_loss = compute_loss  # an instance attribute on a Trainer that is thrown away


@contextmanager
def _seeded_forward(model: nn.Module) -> Iterator[None]:
    """Re-seed before every top-level forward, so identical micro-batches compute identical losses."""
    def reseed(module: nn.Module, args: Any) -> None:
        if torch._C._current_graph_task_id() == -1:
            torch.manual_seed(_SEED)

    handle = model.register_forward_pre_hook(reseed)
    try:
        yield
    finally:
        handle.remove()


def _reference_step(trainer: Any, model: nn.Module, inputs: Inputs) -> tuple[float, float] | None:
    """One micro-batch's loss and gradient norm, without accumulation or loss kwargs: what Trainer should see."""
    if not inputs.has_labels and not _own_loss(trainer):
        return None
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))  # one micro-batch, as trained
    trainable = [p for p in unique_parameters(model).values() if p.requires_grad]
    for param in trainable:
        param.grad = None
    with _seeded_forward(model):
        model.train()
        loss = type(trainer).compute_loss(trainer, model, batch)  # the class's, not the probe's recording wrapper
    loss = loss[0] if isinstance(loss, tuple) else loss
    if loss.requires_grad:
        loss.backward()
    norm = sum(float(p.grad.detach().float().norm()) ** 2 for p in trainable if p.grad is not None) ** 0.5
    return float(loss.detach()), norm


def _own_loss(trainer: Any) -> bool:
    """The user's Trainer subclass computes the loss itself (labels may go by any name)."""
    import transformers

    return type(trainer).compute_loss is not transformers.Trainer.compute_loss


def _move_back(model: nn.Module, devices: dict[str, torch.device]) -> None:
    moved = {n: p.device for n, p in parameters(model).items() if devices.get(n) not in (None, p.device)}
    if moved and len(set(devices.values())) == 1:
        model.to(next(iter(devices.values())))


@contextmanager
def _quiet() -> Iterator[None]:
    import logging

    from transformers.utils import logging as hf_logging

    logger = logging.getLogger("transformers")
    level = logger.level
    bars = hf_logging.is_progress_bar_enabled()
    logger.setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
        if bars:
            hf_logging.enable_progress_bar()
