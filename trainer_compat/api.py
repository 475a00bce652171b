"""The public ``check``: target -> model -> protocol for these features -> findings -> Report.

One pipeline serves every entry point: the command line, the pytest plugin and pre-commit run ``workflow``, which
calls the same ``checker`` core; ``check`` here is the API's door to it, and ``check(data=...)`` takes the path of
``preflight`` (``trainer_check``).
"""

from __future__ import annotations

from typing import Any

from trainer_compat.checker import build_subject, check_subject
from trainer_compat.errors import UsageError
from trainer_compat.features import TrainingSetup, build_setup
from trainer_compat.report import Report
from trainer_compat.subject import Subject


def check(
    model_or_class: Any,
    args: Any = None,
    trainer: Any = "trainer",
    *,
    init_kwargs: dict[str, Any] | None = None,
    target: str | None = None,
    probe: bool = False,
    sample: Any = None,
    transformers_version: str | None = None,
    peft: Any = None,
    data: Any = None,
    collator: Any = None,
    launch: Any = None,
) -> Report:
    """Check a model (instance, class or zero-argument factory) against the installed Trainer's protocol.

    ``args`` is a ``TrainingArguments`` or a dict of its fields (None: Trainer's defaults);
    ``trainer`` is ``"trainer"``, ``"seq2seq"`` or ``"sft"`` (TRL's SFTTrainer, with ``args`` as SFTConfig
    fields), or the user's Trainer subclass (a class or ``module:Name``): its ``compute_loss`` and
    ``prediction_step`` are what the rules and the probe judge. ``probe=True`` adds the dry-run through that
    real Trainer on a tiny batch, after which the model is bitwise as it was: the batch comes from ``data``
    (a Dataset, a list of examples or a zero-argument callable returning one; collated by ``collator`` when
    given), else ``sample`` (one example as a dict of tensors, or a .pt/.json path), else is synthesized from
    what the model declares (a failure the invention could explain is reported as inconclusive, TC609). With
    ``data`` the check takes the path of ``preflight``: the Trainer is built with that data, and its columns,
    collator output and batch are checked too (TC701-TC704). Without the probe a class or factory is built
    on the meta device (no weights allocated); an instance is checked as it is, never copied.
    ``transformers_version``: the verdict for that release instead of the installed one (a forecast:
    trainer_compat/forecast.py). ``peft``: the adapter config (a LoraConfig or a dict of its fields) the model
    will get: adds the PEFT rules. ``# trainer-compat: ignore[CODE] reason`` comments on the class line apply,
    as on the command line. ``launch``: how the run is launched (a ``features.Launch`` or a mapping of
    ``world_size``, ``nnodes``, ``launcher``): a hazard that fails every multi-process run is an error when
    ``world_size > 1``, a warning otherwise.
    """
    setup = build_setup(args, trainer, data=data, collator=collator, launch=launch, peft=peft)
    subject = build_subject(model_or_class, target=target, init_kwargs=init_kwargs,
                            meta=not probe and data is None)
    if data is not None:
        report = _with_data(subject, setup, probe, transformers_version)
    else:
        report = check_subject(subject, setup, probe=probe, sample=sample, transformers_version=transformers_version)
    from trainer_compat.suppress import apply_suppressions

    return apply_suppressions(report)


def _with_data(subject: Subject, setup: TrainingSetup, probe: bool, version: str | None) -> Report:
    from trainer_compat.trainer_check import data_report

    if version is not None:
        raise UsageError("--transformers-version forecasts from data; --data builds the installed Trainer: drop one")
    if subject.instance is None:
        raise UsageError(f"--data: {subject.target} was not built ({subject.not_built})")
    return data_report(subject.instance, setup, probe, subject.target)
