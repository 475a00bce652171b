"""Run the real Trainer on an agreement-corpus model (tests/corpus/) the way its repository does, and say what happened.

A corpus module gives the model factory, its data, its collator and its Trainer subclass (or None: the stock
``Trainer`` / ``Seq2SeqTrainer`` for its ``KIND``). Each profile trains it for two steps (tests/trainer_runner.py's
run scale) and classifies the run as ``ok``, ``failed`` (phase + exception) or ``silent``: it ran to the end but

* no training loss was logged, or a logged loss is not finite;
* no trainable parameter changed;
* checkpointing was on but ``torch.utils.checkpoint`` never ran, or parameters that a run without checkpointing
  updates got no update with it;
* a checkpoint was scheduled but no directory with model weights was written;
* evaluation was scheduled but never ran, or reported no ``eval_loss`` although the model trains on a loss.

This extends tests/trainer_runner.py (its Trace, phase tracking and checkpoint counting are reused, not changed).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tests.trainer_runner import (
    _WEIGHT_FILES,
    RUN_SCALE,
    Outcome,
    Trace,
    _checkpointing_observations,
    _Phase,
    count_checkpoints,
    record_failure,
    record_result,
)

# The profiles of the corpus: each one switches on one thing the Trainer does besides plain steps.
PROFILES: dict[str, dict[str, Any]] = {
    "basic": {"save_strategy": "no"},
    "checkpointing": {"gradient_checkpointing": True, "save_strategy": "no"},
    "save": {"save_strategy": "steps", "save_steps": 1},
    "eval": {"eval_strategy": "steps", "eval_steps": 1, "save_strategy": "no"},
}
STATUSES = ("ok", "fails", "silent")
# The transformers lines on which every corpus file's EXPECTED was measured by running it (5.24.0, 4.57.3, 4.46.3); a
# module overrides it with its own VERIFIED_ON, and a line where its outcomes differ with EXPECTED_BY_LINE.
VERIFIED_ON = ("5", "4.57", "4.46")


def transformers_line() -> str:
    """The installed transformers line: "4.46", "4.57" or "5" (the lines the project supports)."""
    import transformers

    major, minor = transformers.__version__.split(".")[:2]
    return major if major != "4" else f"4.{minor}"


@dataclass
class CorpusEntry:
    """One corpus module, read through the names every corpus file defines."""

    name: str
    module: types.ModuleType

    @property
    def factory(self) -> Callable[[], torch.nn.Module]:
        return self.module.Model

    @property
    def kind(self) -> str:
        return getattr(self.module, "KIND", "trainer")

    @property
    def trainer_class(self) -> Any:
        """TRAINER, or the stock class for KIND."""
        import transformers

        own = getattr(self.module, "TRAINER", None)
        if own is not None:
            return own
        return transformers.Seq2SeqTrainer if self.kind == "seq2seq" else transformers.Trainer

    @property
    def trainer_argument(self) -> Any:
        """What check(..., trainer=) gets: the Trainer subclass, or the kind."""
        return getattr(self.module, "TRAINER", None) or self.kind

    @property
    def collator(self) -> Any:
        return getattr(self.module, "collator", None)

    @property
    def args_class(self) -> Any:
        import transformers

        own = getattr(self.module, "ARGS_CLASS", None)
        if own is not None:
            return own
        return transformers.Seq2SeqTrainingArguments if self.kind == "seq2seq" else transformers.TrainingArguments

    def data(self) -> list[dict[str, Any]]:
        return self.module.make_data()

    def eval_data(self) -> list[dict[str, Any]]:
        make = getattr(self.module, "make_eval_data", None)
        return make() if make is not None else self.module.make_data()[:4]

    def fields(self, profile: str) -> dict[str, Any]:
        """The TrainingArguments fields of the run (and of every check mode): run scale, the repo's own
        arguments (ARGS), then the profile."""
        return {**RUN_SCALE, **getattr(self.module, "ARGS", {}), **PROFILES[profile]}

    def check_args(self, profile: str, output_dir: Path) -> Any:
        """What check(args=) gets: the fields, or, where the repository has its own TrainingArguments subclass
        (ARGS_CLASS: its Trainer reads fields the stock class lacks), that class built from them, as the user's
        script builds it."""
        if getattr(self.module, "ARGS_CLASS", None) is None:
            return self.fields(profile)
        return self.args_class(output_dir=str(output_dir), **self.fields(profile))

    def expected(self, profile: str, line: str | None = None) -> str | None:
        """EXPECTED[profile] where it was verified on this transformers line (EXPECTED_BY_LINE overrides it for
        a line); None where it was not verified on this line."""
        line = line or transformers_line()
        by_line = getattr(self.module, "EXPECTED_BY_LINE", {})
        if line in by_line and profile in by_line[line]:
            return by_line[line][profile]
        if line in getattr(self.module, "VERIFIED_ON", VERIFIED_ON):
            return self.module.EXPECTED.get(profile)
        return None

    def missing(self) -> list[str]:
        return [m for m in getattr(self.module, "NEEDS", ()) if importlib.util.find_spec(m) is None]

    def skip_reason(self) -> str | None:
        missing = self.missing()
        if missing:
            return f"needs {', '.join(missing)}"
        reason = getattr(self.module, "SKIP", None)
        return reason() if callable(reason) else reason

    def build_trainer(self, profile: str, output_dir: Path, model: Any = None,
                      extra: dict[str, Any] | None = None) -> Any:
        """The Trainer the repository builds: its class, arguments, data and collator (``extra``: fields that
        replace the profile's, for a reference run)."""
        args = self.args_class(output_dir=str(output_dir), **{**self.fields(profile), **(extra or {})})
        evaluates = str(getattr(args.eval_strategy, "value", args.eval_strategy)) != "no"
        kwargs: dict[str, Any] = {
            "model": model if model is not None else self.factory(),
            "args": args,
            "train_dataset": self.data(),
            "eval_dataset": self.eval_data() if evaluates else None,
        }
        if self.collator is not None:
            kwargs["data_collator"] = self.collator
        return self.trainer_class(**kwargs)


def load(name: str) -> CorpusEntry:
    return CorpusEntry(name, importlib.import_module(f"tests.corpus.{name}"))


# --- the real run ------------------------------------------------------------------------------------------


@dataclass
class CorpusTrace(Trace):
    evaluation_keys: list[list[str]] = field(default_factory=list)


def execute(entry: CorpusEntry, profile: str, workdir: Path, overrides: dict[str, Any] | None = None
            ) -> CorpusTrace:
    """Build the model and the repository's Trainer, train, and record what happened."""
    import transformers

    trace = CorpusTrace()
    transformers.set_seed(0)
    model = entry.factory()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trace.trainable = set(before)
    phase = _Phase()
    with warnings.catch_warnings(), count_checkpoints() as counter:
        warnings.simplefilter("ignore")
        try:
            run = entry.build_trainer(profile, workdir, model=model, extra=overrides)
            for method, name in (("training_step", "training step"), ("evaluate", "evaluation"),
                                 ("_save_checkpoint", "saving a checkpoint")):
                phase.track(run, method, name)
            phase.current = "train()"
            run.train()
            trace.checkpoint_calls = counter[0]
            trace.log_history = list(run.state.log_history)
        except Exception as exc:  # the outcome under test: any failure of the real Trainer
            return record_failure(trace, phase, exc)
    return record_result(trace, model, before, workdir)


def _observations(trace: CorpusTrace, fields: dict[str, Any]) -> list[str]:
    found = []
    losses = [e["loss"] for e in trace.log_history if "loss" in e]
    if not losses:
        found.append("no training loss was logged")
    elif not all(math.isfinite(float(x)) for x in losses):
        found.append(f"logged losses are not finite: {losses}")
    if trace.trainable and not trace.updated:
        found.append(f"none of the {len(trace.trainable)} trainable parameters changed")
    if fields.get("eval_strategy", "no") != "no":
        if not trace.evaluations:
            found.append("evaluation was scheduled but never ran")
        elif any("eval_loss" not in e for e in trace.evaluations):
            keys = sorted({k for e in trace.evaluations for k in e})
            found.append(f"evaluation reported no eval_loss although the model trains on a loss (got {keys})")
    if fields.get("save_strategy", "steps") != "no":
        if not trace.checkpoints:
            found.append("saving was scheduled but no checkpoint directory was written")
        for name, files in trace.checkpoints.items():
            if not any(f in files for f in _WEIGHT_FILES):
                found.append(f"{name} holds no model weights ({', '.join(files)})")
    return found


def run(entry: CorpusEntry, profile: str, workdir: Path) -> Outcome:
    """Train ``entry`` under ``profile`` with its real Trainer class and classify what happened."""
    fields = entry.fields(profile)
    trace = execute(entry, profile, workdir / "run")
    if trace.error:
        return Outcome("failed", trace.failed_in, trace.error)
    found = _observations(trace, fields)
    if fields.get("gradient_checkpointing"):
        reference = execute(entry, profile, workdir / "reference-checkpointing",
                            overrides={"gradient_checkpointing": False})
        if reference.error:
            return Outcome("failed", "reference run", f"the reference run without checkpointing failed: "
                                                      f"{reference.error}")
        found += _checkpointing_observations(trace, reference)
    return Outcome("silent", observations=found) if found else Outcome("ok")


def status(outcome: Outcome) -> str:
    """An Outcome as EXPECTED spells it: "ok", "fails" or "silent"."""
    return {"ok": "ok", "failed": "fails", "silent": "silent"}[outcome.status]
