"""A rule: one check that carries its code, name, severity, explanation and examples."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from packaging.version import Version

from trainer_compat.features import Feature, TrainingSetup
from trainer_compat.findings import Finding, Location, Severity
from trainer_compat.protocol.data import requirements_for
from trainer_compat.protocol.model import Requirement, Site
from trainer_compat.protocol.sites import resolve
from trainer_compat.subject import Subject
from trainer_compat.versions import ALWAYS, VersionRange


@dataclass(frozen=True)
class Expect:
    """What a firing example's finding must say: its severity, the member it names, a fragment of its message."""

    severity: Severity | None = None
    member: str | None = None
    fragment: str | None = None

    def problems(self, finding: Finding) -> list[str]:
        """Why ``finding`` does not meet the expectation (empty: it does)."""
        out = []
        if self.severity is not None and finding.severity is not self.severity:
            out.append(f"severity {finding.severity.value}, expected {self.severity.value}")
        if self.member is not None and finding.member != self.member:
            out.append(f"member {finding.member!r}, expected {self.member!r}")
        if self.fragment is not None and self.fragment not in finding.message:
            out.append(f"message lacks {self.fragment!r}: {finding.message}")
        return out

    def describe(self) -> str:
        parts = [self.severity.value if self.severity else "", f"on `{self.member}`" if self.member else "",
                 f"saying \"{self.fragment}\"" if self.fragment else ""]
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class Example:
    """Source that defines a module-level ``Model`` (class, factory or instance), and the arguments.

    ``versions`` limits the transformers releases on which the example behaves as stated; ``expect`` (fires
    examples) what the finding must say, checked by tests/test_rule_examples.py and shown in docs/rules.md.
    """

    code: str
    args: dict[str, Any] = field(default_factory=dict)
    trainer: str = "trainer"
    versions: VersionRange = ALWAYS
    probe: bool = False
    peft: dict[str, Any] | None = None  # an adapter config (LoraConfig fields) for the PEFT rules
    data: str | None = None  # source defining ``Data``: the user's examples (a list, a Dataset or a factory)
    trainer_code: str | None = None  # source defining ``MyTrainer``: the user's Trainer subclass
    launch: dict[str, Any] | None = None  # how the run is launched (features.Launch fields)
    expect: Expect | None = None

    def load(self, directory: Path) -> Any:
        """Write the example to ``directory`` as a module (so its source is inspectable) and return ``Model``."""
        return _load(self.code, "Model", directory)

    def options(self, directory: Path) -> dict[str, Any]:
        """The keyword arguments of ``check`` for this example (the trainer class and data loaded)."""
        trainer: Any = _load(self.trainer_code, "MyTrainer", directory) if self.trainer_code else self.trainer
        return {"args": self.args, "trainer": trainer, "probe": self.probe, "peft": self.peft,
                "data": _load(self.data, "Data", directory) if self.data else None, "launch": self.launch}


def _load(code: str, name: str, directory: Path) -> Any:
    from trainer_compat.targets import load_target

    digest = hashlib.sha1(code.encode()).hexdigest()[:10]
    path = directory / f"tc_example_{digest}.py"
    path.write_text(code, encoding="utf-8")
    return load_target(f"{path}:{name}")


@dataclass
class Context:
    """Everything a rule may look at: the subject, the training setup and the protocol that applies."""

    subject: Subject
    setup: TrainingSetup
    version: Version
    skipped: list[str] = field(default_factory=list)
    probe: Any = None  # ProbeObservations when the dry-run was asked for
    forecast: bool = False  # ``version`` is not the installed release: call sites come from the recorded lines

    def site(self, site: Site) -> Location | None:
        """``file:line`` of a protocol call site in the release the verdict is for."""
        return resolve(site, self.version if self.forecast else None)

    @property
    def requirements(self) -> list[Requirement]:
        return requirements_for(self.version, self.setup.features, self.setup.trainer)

    def has(self, feature: Feature) -> bool:
        return self.setup.has(feature)

    def skip(self, what: str, why: str) -> None:
        note = f"{what}: {why}"
        if note not in self.skipped:
            self.skipped.append(note)


class Rule:
    """One check: its code, name, severity, explanation and examples (which are its tests and its docs).

    A model rule reads a Context in ``check``; a rule whose findings another part reports (``produced_by``:
    preflight, the suppression comments, the isolated check) only declares itself here, so that every code is
    documented, listed and selected alike. The metadata is validated when the class is created.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity]  # the most severe level it reports
    summary: ClassVar[str]
    explanation: ClassVar[str]
    fires: ClassVar[tuple[Example, ...]] = ()
    silent: ClassVar[tuple[Example, ...]] = ()
    versions: ClassVar[VersionRange] = ALWAYS  # the releases on which the hazard exists at all
    produced_by: ClassVar[str | None] = None  # None: a model rule; else what reports its findings

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in vars(cls):
            _validate(cls)

    def check(self, ctx: Context) -> Iterator[Finding]:
        raise NotImplementedError

    @classmethod
    def make(cls, message: str, *, version: str | None, location: Location | None = None,
             severity: Severity | None = None, member: str | None = None, feature: Feature | str | None = None,
             fix: str | None = None, call_site: Location | None = None, **details: Any) -> Finding:
        """A finding of this rule (what ``finding`` builds from a Context, and other reporters directly)."""
        return Finding(rule=cls.code, name=cls.name, severity=severity or cls.severity, message=message,
                       member=member, feature=feature.value if isinstance(feature, Feature) else feature, fix=fix,
                       transformers_version=version, call_site=call_site, location=location, details=details)

    def finding(
        self,
        ctx: Context,
        message: str,
        *,
        severity: Severity | None = None,
        member: str | None = None,
        feature: Feature | str | None = None,
        fix: str | None = None,
        call_site: Location | None = None,
        location: Location | None = None,
        **details: Any,
    ) -> Finding:
        from trainer_compat.shims.discover import name_inner  # fix texts name the wrapper's real inner attribute

        return self.make(message, version=str(ctx.version), location=location or ctx.subject.location,
                         severity=severity, member=member, feature=feature, fix=name_inner(fix, ctx.subject.instance),
                         call_site=call_site, **details)


_CODE = re.compile(r"TC\d{3,4}")
_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


def _validate(rule: type[Rule]) -> None:
    """A rule's metadata, checked when its class is created: a malformed rule is a TypeError at import."""
    problems = []
    if not isinstance(vars(rule).get("code"), str) or not _CODE.fullmatch(rule.code):
        problems.append(f"code {vars(rule).get('code')!r} is not TC followed by 3 or 4 digits")
    if not isinstance(getattr(rule, "name", None), str) or not _NAME.fullmatch(rule.name):
        problems.append(f"name {getattr(rule, 'name', None)!r} is not lower-case-with-dashes")
    if not isinstance(getattr(rule, "severity", None), Severity):
        problems.append("severity is not a Severity")
    for text in ("summary", "explanation"):
        if not isinstance(getattr(rule, text, None), str) or not getattr(rule, text).strip():
            problems.append(f"{text} is empty")
    if not isinstance(rule.versions, VersionRange):
        problems.append("versions is not a VersionRange")
    if not all(isinstance(e, Example) for e in (*rule.fires, *rule.silent)):
        problems.append("fires/silent hold something other than Examples")
    if problems:
        raise TypeError(f"rule {rule.__module__}.{rule.__qualname__}: {'; '.join(problems)}")


def first_feature(requirement: Requirement, ctx: Context) -> Feature:
    return sorted(requirement.features & ctx.setup.features, key=lambda f: f.value)[0]
