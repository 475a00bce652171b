"""``preflight(trainer)``: check an already built Trainer as it will really run, just before ``train()``.

Its model against its arguments and trainer class (the same rules as ``check``), its data as the
Trainer's own dataloader would deliver it (TC701-TC704), and, with ``probe=True``, the dry-run on one
real example from that data. The trainer, its model (Python state included), accelerate's shared state,
torch's global flags and the environment are restored; the RNG streams are put back, so the training run
that follows sees exactly what it would have seen.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from trainer_compat.findings import Finding, Severity
from trainer_compat.report import Report
from trainer_compat.rules.reported import BatchDoesNotBind, CollatorOutput, DatasetColumnsDropped, LabelsNotInBatch

_MAX_BATCH = 8


class IncompatibleTrainerError(Exception):
    """Raised by ``preflight(..., raise_on_error=True)``; the message is the report, ``.report`` the Report."""

    def __init__(self, report: Report) -> None:
        super().__init__(str(report))
        self.report = report


@dataclass
class DataView:
    """What the trainer's data looks like to its model, as its dataloader would build the first batch."""

    source: str = ""
    columns: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    batch: Any = None
    collator_error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> list[str]:
        return [c for c in self.columns if c not in self.kept]


def preflight(trainer: Any, probe: bool = True, *, raise_on_error: bool = False, fail_on: str = "error",
              select: Sequence[str] | None = None, ignore: Sequence[str] | None = None) -> Report:
    """Check ``trainer`` (a built ``Trainer`` or ``Seq2SeqTrainer``) before ``trainer.train()``.

    Returns the Report; with ``raise_on_error=True`` raises IncompatibleTrainerError (its message is the
    report) when a finding reaches ``fail_on``. Suppression comments on the model's class apply, and
    ``select``/``ignore`` filter codes as on the command line.
    """
    from trainer_compat.catalog import Selection
    from trainer_compat.verdict import fails, finalize

    selection = Selection.of(select, ignore)
    report = finalize(trainer_report(trainer, probe), selection)
    if raise_on_error and fails(report, fail_on):
        raise IncompatibleTrainerError(report)
    return report


def trainer_report(trainer: Any, probe: bool, target: str | None = None) -> Report:
    """The model rules under the trainer's class, arguments and data, the data findings and (``probe``) the
    dry-run of that class on its own first examples and collator; suppressions and selection not applied."""
    from trainer_compat.checker import check_subject
    from trainer_compat.features import build_setup
    from trainer_compat.subject import Subject

    with preserved(trainer):
        data = inspect_data(trainer)
        dataset = trainer.train_dataset if trainer.train_dataset is not None else trainer.eval_dataset
        usable = probe and dataset is not None and data.collator_error is None and isinstance(data.batch, Mapping)
        setup = build_setup(trainer.args, type(trainer), data=dataset if usable else None,
                            collator=trainer.data_collator, trainer_kwargs=_init_extras(trainer))
        subject = Subject.of(trainer.model, target or type(trainer.model).__qualname__)
        runs_probe = probe and setup.trainer not in ("sft", "dpo", "reward", "grpo")
        report = check_subject(subject, setup, probe=runs_probe)
    notes = list(report.skipped) + data.notes
    if probe and not runs_probe:
        notes.append(f"probe: not run: the dry-run builds transformers' Trainer classes, not TRL's "
                     f"{type(trainer).__name__}")
    elif probe and not usable:
        notes.append("probe: ran on a synthetic batch: the trainer's first batch could not be used")
    findings = sorted([*report.findings, *data_findings(trainer, data, report.transformers_version)],
                      key=lambda f: (-f.severity.rank, f.rule))
    return dataclasses.replace(report, findings=findings, skipped=notes)


def data_report(model: Any, setup: Any, probe: bool, target: str) -> Report:
    """``check(model, data=...)`` / ``--data``: the path of ``preflight``, on the Trainer the user's run builds
    (their class, arguments, data and collator), constructed here without reporting anywhere. When that Trainer
    cannot even be built with this model, the model rules and the dry-run (whose Trainer() phase then fails the
    same way, TC601) report why; the data checks need the built Trainer and are listed as skipped."""
    from trainer_compat.checker import check_subject
    from trainer_compat.errors import UsageError
    from trainer_compat.subject import Subject

    try:
        trainer = build_trainer(model, setup)
    except UsageError:
        raise
    except Exception as exc:
        report = check_subject(Subject.of(model, target), setup, probe=True)
        why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        return dataclasses.replace(report, skipped=[*report.skipped, f"TC701-TC704: the Trainer could not be "
                                                                      f"built with this model ({why})"])
    return trainer_report(trainer, probe, target)


def build_trainer(model: Any, setup: Any) -> Any:
    from trainer_compat.errors import UsageError
    from trainer_compat.features import Feature
    from trainer_compat.probe.batch import user_data
    from trainer_compat.trainer_class import stock_class

    cls = setup.trainer_class or stock_class(setup.trainer)
    args = dataclasses.replace(setup.args, report_to=[])
    data = user_data(setup.data).data
    kwargs: dict[str, Any] = dict(model=model, args=args, train_dataset=data, **(setup.trainer_kwargs or {}))
    if setup.has(Feature.EVAL):
        kwargs["eval_dataset"] = data
    if setup.collator is not None:
        kwargs["data_collator"] = setup.collator
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise UsageError(f"--data: {cls.__name__}(model=, args=, train_dataset=...) raised TypeError: {exc}; build "
                         "the trainer in your script and call trainer_compat.preflight(trainer)") from exc


def _init_extras(trainer: Any) -> dict[str, Any]:
    """What the user's Trainer subclass was built with beyond the stock parameters, read back from the trainer
    (``processing_class`` too, which compute_loss overrides often use), so the probe can build it again."""
    from transformers import Trainer

    stock = set(inspect.signature(Trainer.__init__).parameters)
    try:
        own = inspect.signature(type(trainer).__init__).parameters
    except (TypeError, ValueError):
        return {}
    wanted = [n for n, p in own.items() if n not in stock and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    extras = {n: trainer.__dict__[n] for n in wanted if n in trainer.__dict__}
    for name in ("compute_metrics", "preprocess_logits_for_metrics"):  # they decide what evaluate() gathers
        if name in stock and trainer.__dict__.get(name) is not None:
            extras.setdefault(name, trainer.__dict__[name])
    for name in ("processing_class", "tokenizer"):
        if name in stock and trainer.__dict__.get(name) is not None and name not in extras:
            extras[name] = trainer.__dict__[name]
            break
    return extras


# -- leaving no trace -------------------------------------------------------------------------------------

@contextmanager
def preserved(trainer: Any) -> Iterator[None]:
    """Put back the trainer's attributes and the process around it afterwards: every RNG stream (CUDA's without
    initialising it), accelerate's shared state, torch's global flags and the environment (probe/process.py)."""
    from trainer_compat.probe.process import ProcessState

    attributes = dict(trainer.__dict__)
    process = ProcessState.capture()
    try:
        yield
    finally:
        trainer.__dict__.clear()
        trainer.__dict__.update(attributes)
        process.restore()


# -- the data as the dataloader builds it -----------------------------------------------------------------

def _is_hf_dataset(dataset: Any) -> bool:
    try:
        import datasets
    except ImportError:
        return False
    return isinstance(dataset, datasets.Dataset)


def _first_examples(dataset: Any, count: int) -> list[Any]:
    if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
        return [dataset[i] for i in range(min(count, len(dataset)))]
    examples = []
    for example in dataset:
        examples.append(example)
        if len(examples) == count:
            break
    return examples


def _columns(dataset: Any, examples: list[Any]) -> list[str]:
    names = getattr(dataset, "column_names", None)
    if isinstance(names, list):
        return list(names)
    return list(examples[0]) if examples and isinstance(examples[0], Mapping) else []


def inspect_data(trainer: Any) -> DataView:
    """The train dataset's columns, those that survive ``remove_unused_columns``, and the first batch."""
    dataset = trainer.train_dataset if trainer.train_dataset is not None else trainer.eval_dataset
    view = DataView()
    if dataset is None:
        view.notes.append("data checks: the trainer has no train_dataset or eval_dataset")
        return view
    view.source = type(dataset).__name__
    count = max(1, min(int(trainer.args.per_device_train_batch_size), _MAX_BATCH))
    view.columns = _columns(dataset, _first_examples(dataset, 1))
    remove = bool(trainer.args.remove_unused_columns)
    trainer._set_signature_columns_if_needed()
    signature = list(trainer._signature_columns or [])
    view.kept = [c for c in view.columns if c in signature] if remove else list(view.columns)
    collator = trainer.data_collator
    if remove and _is_hf_dataset(dataset):
        if not view.kept:
            return view  # Trainer raises here; TC701 says why
        dataset = dataset.remove_columns(view.dropped)
    else:
        collator = trainer._get_collator_with_removed_columns(collator, description="training")
    try:
        view.batch = collator(_first_examples(dataset, count))
    except Exception as exc:
        view.collator_error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return view


# -- findings ---------------------------------------------------------------------------------------------

def _inspected(model: Any) -> Any:
    """What Trainer inspects for columns and binding: the base model under a PeftModel."""
    from trainer_compat.signature import inspected_module
    from trainer_compat.subject import Subject

    return inspected_module(Subject.of(model))


def _forward_parameters(model: Any) -> tuple[dict[str, inspect.Parameter], bool]:
    model = _inspected(model)
    try:
        params = dict(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return {}, True
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = {n: p for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return named, var_kw


def _is_pretrained(model: Any) -> bool:
    """A transformers model's ``**kwargs`` are loss/attention kwargs, not inputs that columns could feed."""
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel)


def data_findings(trainer: Any, data: DataView, version: str) -> list[Finding]:
    from trainer_compat.subject import Subject

    location = Subject.of(trainer.model, "").location
    params, var_kw = _forward_parameters(trainer.model)
    out = _column_findings(data, var_kw and not _is_pretrained(_inspected(trainer.model)), version, location)
    if data.batch is None and data.collator_error is None:
        return out
    out += _collator_findings(data, version, location)
    if isinstance(data.batch, Mapping):
        out += _binding_findings(trainer.model, data.batch, params, var_kw, version=version, location=location)
        out += _label_findings(trainer, data.batch, version, location)
    return out


def _column_findings(data: DataView, var_kw: bool, version: str, location: Any) -> list[Finding]:
    if not data.dropped:
        return []
    dropped = ", ".join(data.dropped)
    fix = "name these inputs in forward's signature, or pass remove_unused_columns=False"
    if not data.kept:
        return [DatasetColumnsDropped.make(
            f"no column of the {data.source} ({dropped}) is a forward parameter or label name: with "
            "remove_unused_columns Trainer drops them all and the first batch is empty or Trainer raises "
            "'No columns in the dataset match'", version=version, location=location, fix=fix,
            feature="remove_unused_columns", dropped=data.dropped)]
    if var_kw:
        return [DatasetColumnsDropped.make(
            f"remove_unused_columns drops {dropped} from the {data.source}, though forward(**kwargs) would "
            "take them", version=version, location=location, fix=fix, feature="remove_unused_columns",
            dropped=data.dropped)]
    return [DatasetColumnsDropped.make(
        f"remove_unused_columns drops {dropped} (not forward parameters); the model gets "
        f"{', '.join(data.kept)}", version=version, location=location, severity=Severity.INFO,
        feature="remove_unused_columns", dropped=data.dropped)]


def _collator_findings(data: DataView, version: str, location: Any) -> list[Finding]:
    if data.collator_error is not None:
        return [CollatorOutput.make(
            f"the data collator raised {data.collator_error} on the first examples of the {data.source}"
            + (f" (after remove_unused_columns dropped {', '.join(data.dropped)})" if data.dropped else ""),
            version=version, location=location, fix="make the collator accept the dataset's examples")]
    batch = data.batch
    if not isinstance(batch, Mapping):
        return [CollatorOutput.make(
            f"the data collator returns a {type(batch).__name__}, not a mapping: Trainer calls model(**inputs) "
            "and raises TypeError at the first step", version=version, location=location,
            fix="return a dict of tensors keyed by forward's parameter names")]
    loose = [str(k) for k, v in batch.items() if v is not None and not isinstance(v, torch.Tensor)]
    if not loose:
        return []
    kinds = ", ".join(f"{k} ({type(batch[k]).__name__})" for k in loose)
    return [CollatorOutput.make(
        f"the collated batch holds values that are not tensors: {kinds}; Trainer does not move them to the "
        "device", version=version, location=location, severity=Severity.WARNING,
        fix="tensorise them in the collator (or drop them)")]


def _binding_findings(model: Any, batch: Mapping[str, Any], params: dict[str, inspect.Parameter], var_kw: bool, *,
                      version: str, location: Any) -> list[Finding]:
    keys = [str(k) for k in batch]
    unexpected = [] if var_kw else [k for k in keys if k not in params]
    missing = [n for n, p in params.items() if p.default is p.empty and n not in keys
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not unexpected and not missing:
        return []
    problems = []
    if unexpected:
        problems.append(f"{', '.join(unexpected)} not accepted")
    if missing:
        problems.append(f"required {', '.join(missing)} not provided")
    return [BatchDoesNotBind.make(
        f"the first batch ({', '.join(keys)}) does not bind to {type(model).__name__}.forward: "
        f"{'; '.join(problems)}; model(**inputs) raises TypeError at the first step", version=version,
        location=location, fix="make the collator's keys match forward's parameters", keys=keys)]


def _label_findings(trainer: Any, batch: Mapping[str, Any], version: str, location: Any) -> list[Finding]:
    args = trainer.args
    strategy = str(getattr(getattr(args, "eval_strategy", None), "value", getattr(args, "eval_strategy", "no")))
    scheduled = strategy != "no" or bool(args.do_eval)
    names = list(trainer.label_names or [])
    absent = [n for n in names if n not in batch]
    if not (scheduled or trainer.eval_dataset is not None) or not names or not absent:
        return []
    best_on_loss = bool(args.load_best_model_at_end) and args.metric_for_best_model in (None, "loss", "eval_loss")
    return [LabelsNotInBatch.make(
        f"label_names {names} are not all in the batch (missing {', '.join(absent)}): evaluation computes no "
        f"eval_loss{'; load_best_model_at_end then fails with KeyError' if best_on_loss else ''}",
        version=version, location=location, severity=Severity.ERROR if scheduled else Severity.WARNING,
        fix="pass label_names=[...] naming the batch's label keys", feature="evaluation")]


__all__ = ["DataView", "IncompatibleTrainerError", "data_findings", "data_report", "inspect_data", "preflight",
           "preserved", "trainer_report"]
