"""One target, as the command line, the pytest plugin and pre-commit check it: check, suppress, select."""

from __future__ import annotations

import json
from typing import Any

from trainer_compat.report import Report
from trainer_compat.verdict import finalize


def _setup(args: dict[str, Any] | None, trainer: str, *, data: str | None = None, collator: str | None = None,
           launch: dict[str, Any] | None = None, static: bool = False, peft: dict[str, Any] | None = None) -> Any:
    """The run's setup for these options: built once per run (targets that share options share it)."""
    from trainer_compat.features import build_setup
    from trainer_compat.targets import run_scoped

    setups = run_scoped("setups")
    key = json.dumps([args, trainer, data, collator, launch, static, peft], sort_keys=True, default=str)
    if key not in setups:
        setups[key] = build_setup(args, trainer, data=_load(data, "--data"), collator=_load(collator, "--collator"),
                                  launch=launch, static=static, peft=peft)
    return setups[key]


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


def check_target(settings: Any, timeout_s: float | None = None) -> Report:
    """Import, build and check one configured target (a ``config.TargetSettings``) under the guard: a deadline
    (a TC801 finding), stdin closed, and what it changes in the process put back afterwards."""
    setup = _setup(settings.args, settings.trainer, data=settings.data, collator=settings.collator,
                   launch=settings.launch, peft=settings.peft)
    return finalize(guarded(settings.target, timeout_s, lambda run: _build_and_check(settings, setup, run),
                            setup), settings.selection)


def _build_and_check(settings: Any, setup: Any, run: Any) -> Report:
    from trainer_compat.checker import build_subject, check_subject
    from trainer_compat.targets import load_target

    subject = build_subject(load_target(settings.spec), target=settings.target, init_kwargs=settings.init_kwargs,
                            meta=not settings.probe and setup.data is None)
    run.built()
    if setup.data is not None:
        from trainer_compat.api import _with_data

        return _with_data(subject, setup, settings.probe, settings.transformers_version)
    return check_subject(subject, setup, probe=settings.probe, sample=settings.sample,
                         transformers_version=settings.transformers_version,
                         progress_stream=getattr(settings, "progress_stream", None))


def guarded(target: str, timeout_s: float | None, body: Any, setup: Any = None) -> Report:
    """``body(run)`` under ``guard.target_run``. Target code cannot own the outcome: a deadline is a TC801
    finding; SystemExit, KeyboardInterrupt or GeneratorExit raised while it is built is one line (exit 2), while
    it is checked a TC803 finding; the user's Ctrl-C ends the run."""
    from trainer_compat import guard
    from trainer_compat.errors import TargetError

    runs: list[Any] = []
    try:
        with guard.target_run(target, timeout_s) as run:
            runs.append(run)
            return body(run)
    except guard.TargetTimeout:
        phase = runs[0].phase if runs else "building"
        return failure_report(target, "hang", f"did not finish within {timeout_s:g} s ({phase} it); stopped", setup)
    except (SystemExit, KeyboardInterrupt, GeneratorExit) as exc:
        if guard.is_ours(exc):
            raise
        if not runs or runs[0].phase == "building":
            raise TargetError(target, f"building it raised {guard.describe(exc)}") from exc
        return failure_report(target, "exit", f"raised {guard.describe(exc)} while it was checked", setup)


def failure_report(target: str, kind: str, detail: str, setup: Any = None, *, ready: dict[str, Any] | None = None,
                   started: dict[str, Any] | None = None) -> Report:
    """The report of a target that hung, crashed or ended its check: one finding (TC801-TC804)."""
    from trainer_compat.rules.isolation import BY_KIND

    if ready is None:
        from trainer_compat.versions import installed_torch, installed_transformers

        ready = {"transformers": str(installed_transformers()), "torch": installed_torch()}
    started = started if started is not None else {
        "trainer": getattr(setup, "trainer", ""), "features": sorted(f.value for f in getattr(setup, "features", ()))}
    version = ready.get("transformers", "")
    finding = BY_KIND[kind].failure(detail, version or None)
    return Report(target=target, transformers_version=version, torch_version=ready.get("torch", ""),
                  trainer=started.get("trainer", ""), features=tuple(started.get("features", ())),
                  findings=[finding], skipped=[f"every check: the target's check did not finish ({finding.rule})"])


