"""The core of the pipeline: subject -> context -> rules -> findings -> Report (``api.check`` and every entry
point call it)."""

from __future__ import annotations

import inspect
from typing import Any

from trainer_compat import analysis
from trainer_compat.errors import TargetError, UsageError
from trainer_compat.features import TrainingSetup
from trainer_compat.findings import Finding, Severity
from trainer_compat.meta import LoadsWeights, is_on_meta, on_meta
from trainer_compat.report import MemberRow, Report
from trainer_compat.rules import MODEL_RULES, Context
from trainer_compat.subject import Subject
from trainer_compat.versions import installed_torch, installed_transformers

# Shown in the member table whatever the arguments: what any wrapper author wants to see.
_ALWAYS_SHOWN = ("forward", "config", "gradient_checkpointing_enable", "activation_checkpointing_enable",
                 "get_input_embeddings", "generate", "generation_config", "_no_split_modules",
                 "_keys_to_ignore_on_save", "accepts_loss_kwargs", "main_input_name")


def build_subject(obj: Any, *, target: str | None = None, init_kwargs: dict[str, Any] | None = None,
                  meta: bool = True) -> Subject:
    """``meta``: build a class or factory on the meta device (the probe rebuilds it on the real one)."""
    from torch import nn

    name = target or _default_name(obj)
    if isinstance(obj, nn.Module):
        return Subject.of(obj, name)
    if isinstance(obj, type):
        if not issubclass(obj, nn.Module):
            raise TargetError(name, f"{obj.__qualname__} is not a torch.nn.Module subclass")
        return _instantiate(obj, name, init_kwargs or {}, meta)
    if callable(obj):
        return _from_factory(obj, name, init_kwargs or {}, meta)
    raise TargetError(name, f"a {type(obj).__name__} is not a torch.nn.Module, a class or a factory")


def _default_name(obj: Any) -> str:
    """The class or function name; an instance is named by its class, never asked (its __getattr__ may raise)."""
    if isinstance(obj, type) or analysis.is_module(obj):
        return (obj if isinstance(obj, type) else type(obj)).__qualname__
    try:
        return str(getattr(obj, "__qualname__", type(obj).__qualname__))
    except Exception:  # a callable whose attribute look-up raises: name it by its type
        return type(obj).__qualname__


def _missing_required(func: Any, kwargs: dict[str, Any], skip_self: bool) -> list[str]:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return []
    if skip_self:
        params = params[1:]
    return [p.name for p in params if p.default is inspect.Parameter.empty and p.name not in kwargs
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _instantiate(cls: type[object], name: str, kwargs: dict[str, Any], meta: bool = False) -> Subject:
    missing = _missing_required(cls.__init__, kwargs, skip_self=True)
    if missing:
        subject = Subject(cls=cls, target=name,
                          not_built=f"__init__ needs {', '.join(missing)} (pass --init-kwargs)")
        return subject
    try:
        instance = _construct(lambda: cls(**kwargs), name, f"{cls.__qualname__}(**{kwargs!r})", meta)
    except LoadsWeights as exc:
        return Subject(cls=cls, target=name, not_built=f"{exc}; pass --init-kwargs with a tiny config, or --probe")
    if not analysis.is_module(instance):  # a metaclass's __call__ (or __new__) returned something else
        raise TargetError(name, f"{cls.__qualname__}(...) returned a {type(instance).__name__}, not a torch.nn.Module "
                                "(its metaclass's __call__ or __new__): Trainer would get that object")
    return _subject(instance, name, lambda: _instantiate(cls, name, kwargs))


def _from_factory(func: Any, name: str, kwargs: dict[str, Any], meta: bool = False) -> Subject:
    missing = _missing_required(func, kwargs, skip_self=False)
    if missing:
        raise TargetError(name, f"factory needs arguments {', '.join(missing)} (pass --init-kwargs)")
    try:
        result = _construct(lambda: func(**kwargs), name, "factory", meta)
    except LoadsWeights as exc:
        raise TargetError(name, f"factory not built: {exc}; give it a tiny config (--init-kwargs), name the "
                                "class it builds, or pass --probe") from exc
    if not analysis.is_module(result):
        raise TargetError(name, f"factory returned a {type(result).__name__}, not a torch.nn.Module")
    subject = _subject(result, name, lambda: _from_factory(func, name, kwargs))
    _place_in_project(subject, func)
    return subject


def _place_in_project(subject: Subject, factory: Any) -> None:
    """A factory's model class usually lives in a library (transformers' modeling files): the findings point at
    the user's factory instead, a place a pull request can show."""
    from trainer_compat.subject import source_location

    where = subject.location
    if where is not None and not any(part in where.file for part in ("site-packages", "dist-packages")):
        return
    own = source_location(factory)
    if own is not None:
        subject.__dict__["location"] = own  # the cached property's value


def _construct(make: Any, name: str, what: str, meta: bool) -> Any:
    """``make()``, on the meta device when asked; an __init__ that needs real data is built for real."""
    if meta:
        try:
            with on_meta():
                return make()
        except LoadsWeights:
            raise
        except Exception:
            pass  # e.g. .item() or .numpy() on a meta tensor: build it on the real device
        except SystemExit as exc:
            raise TargetError(name, f"{what} raised SystemExit: {exc}") from exc
    try:
        return make()
    except (Exception, SystemExit) as exc:
        raise TargetError(name, f"{what} raised {type(exc).__name__}: {exc}") from exc


def _subject(model: Any, name: str, rebuild: Any) -> Subject:
    subject = Subject.of(model, name)
    if analysis.is_module(model) and is_on_meta(model):
        subject.rebuild = rebuild  # the probe needs real weights
    return subject


def check_subject(subject: Subject, setup: TrainingSetup, *, probe: bool = False, sample: Any = None,
                  transformers_version: str | None = None, progress_stream: Any = None) -> Report:
    """The model rules (and, with ``probe``, the dry-run: ``progress_stream`` shows its phases) on one subject."""
    from trainer_compat.forecast import requested

    forecast = requested(transformers_version)
    if forecast is not None and probe:
        raise UsageError("--transformers-version forecasts from data; --probe runs the installed Trainer: drop one")
    return _check_subject(subject, setup, probe, sample, forecast or installed_transformers(),
                          progress_stream=progress_stream)


def _check_subject(subject: Subject, setup: TrainingSetup, probe: bool, sample: Any, version: Any, *,
                   progress_stream: Any = None) -> Report:
    if probe and subject.rebuild is not None:
        subject = subject.rebuild()
    ctx = Context(subject=subject, setup=setup, version=version, forecast=version != installed_transformers())
    if ctx.forecast:
        from trainer_compat.forecast import note

        ctx.skip("forecast", note(version, installed_transformers()))
    if subject.not_built:
        ctx.skip("instance checks", f"{subject.cls.__qualname__} was not built: {subject.not_built}")
    if probe:
        ctx.probe = _dry_run(subject, setup, sample, progress_stream)
        for skipped in ctx.probe.skipped:
            ctx.skip("probe", skipped)
    findings: list[Finding] = []
    for rule in MODEL_RULES:
        if version in rule.versions:  # the releases on which the hazard exists at all
            findings.extend(_run_rule(rule(), ctx))
    findings.sort(key=lambda f: (-f.severity.rank, f.rule))
    return Report(
        target=subject.target,
        transformers_version=str(version),
        torch_version=installed_torch(),
        trainer=setup.trainer_name,
        features=tuple(sorted(f.value for f in setup.features)),
        findings=findings,
        members=_member_rows(ctx),
        skipped=list(ctx.skipped),
        location=subject.location,
    )


def _run_rule(rule: Any, ctx: Context) -> list[Finding]:
    """One rule's findings; a rule that crashes (a bug here, or a model it cannot handle) yields a finding that
    names it, and the other rules still run."""
    try:
        return list(rule.check(ctx))
    except Exception as exc:
        where = _raised_at(exc)
        return [Finding(rule=rule.code, name=rule.name, severity=Severity.WARNING,
                        transformers_version=str(ctx.version), location=ctx.subject.location,
                        message=f"{rule.code} ({rule.name}) could not check {ctx.subject.cls.__name__}: it raised "
                                f"{type(exc).__name__}: {str(exc)[:300]}{where}; this check did not run",
                        fix="rerun with --debug and report it at trainer-compat's issue tracker (a bug in "
                            f"trainer-compat), or --ignore {rule.code} until it is fixed")]


def _raised_at(exc: BaseException) -> str:
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    return f" at {frames[-1].filename.rsplit('/', 2)[-1]}:{frames[-1].lineno}" if frames else ""


def _dry_run(subject: Subject, setup: TrainingSetup, sample: Any, progress_stream: Any = None) -> Any:
    from trainer_compat.probe.batch import Inputs, infer_inputs, load_sample, user_data
    from trainer_compat.probe.runner import probe as run_probe

    if setup.data is not None:
        inputs = user_data(setup.data)
    elif sample is not None:
        inputs = Inputs(load_sample(sample), f"sample {sample if isinstance(sample, str) else 'given'}")
    else:
        inputs = infer_inputs(subject, setup.trainer)
    return run_probe(subject, setup, inputs, progress_stream)


def _member_rows(ctx: Context) -> list[MemberRow]:
    needed: dict[str, set[str]] = {}
    for req in ctx.requirements:
        needed.setdefault(req.member, set()).update(f.value for f in req.features & ctx.setup.features)
    rows = []
    for name in dict.fromkeys([*needed, *_ALWAYS_SHOWN]):
        info = ctx.subject.member(name)
        rows.append(MemberRow(name, info.provenance.value, info.describe(), tuple(sorted(needed.get(name, ())))))
    return rows


__all__ = ["build_subject", "check_subject"]
