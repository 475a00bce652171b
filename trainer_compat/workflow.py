"""One target, as the command line, the pytest plugin and pre-commit check it: check, suppress, select."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from trainer_compat.catalog import Selection
from trainer_compat.findings import Severity
from trainer_compat.report import Report

_SETUPS: dict[str, Any] = {}


def finalize(report: Report, selection: Selection | None = None) -> Report:
    """Apply the target's suppression comments, then the selection (what every view then shows)."""
    from trainer_compat.suppress import apply_suppressions

    return select(apply_suppressions(report), selection)


def select(report: Report, selection: Selection | None) -> Report:
    """Only the findings ``selection`` wants (``--select`` / ``--ignore``)."""
    if selection is None:
        return report
    return dataclasses.replace(report, findings=selection.filter(report.findings))


def _setup(args: dict[str, Any] | None, trainer: str, data: str | None = None, collator: str | None = None,
           launch: dict[str, Any] | None = None) -> Any:
    from trainer_compat.features import build_setup

    key = json.dumps([args, trainer, data, collator, launch], sort_keys=True, default=str)
    if key not in _SETUPS:
        _SETUPS[key] = build_setup(args, trainer, data=_load(data, "--data"), collator=_load(collator, "--collator"),
                                   launch=launch)
    return _SETUPS[key]


def _load(spec: str | None, option: str) -> Any:
    """The object a ``module:Name`` option names (a data factory is called when the setup is used)."""
    if spec is None:
        return None
    from trainer_compat.errors import TargetError, UsageError
    from trainer_compat.targets import load_target

    try:
        return load_target(spec)
    except TargetError as exc:
        raise UsageError(f"{option}: {exc}") from exc


def check_target(settings: Any) -> Report:
    """Import, build and check one configured target (a ``config.TargetSettings``)."""
    from trainer_compat.checker import build_subject, check_subject
    from trainer_compat.targets import load_target

    setup = _setup(settings.args, settings.trainer, settings.data, settings.collator, settings.launch)
    obj = load_target(settings.spec)
    subject = build_subject(obj, target=settings.target, init_kwargs=settings.init_kwargs,
                            meta=not settings.probe and setup.data is None)
    if setup.data is not None:
        from trainer_compat.checker import _with_data

        return finalize(_with_data(subject, setup, settings.probe, None), settings.selection)
    report = check_subject(subject, setup, probe=settings.probe, sample=settings.sample)
    return finalize(report, settings.selection)


def fails(report: Report, fail_on: str = "error") -> bool:
    """Whether the report fails the gate: an error, or (``fail_on="warning"``) a warning too."""
    floor = Severity(fail_on).rank
    return any(f.severity.rank >= floor for f in report.findings)


def exit_code(reports: Sequence[Report], fail_on: Sequence[str] | str = "error") -> int:
    levels = [fail_on] * len(reports) if isinstance(fail_on, str) else list(fail_on)
    return 1 if any(fails(r, level) for r, level in zip(reports, levels)) else 0
