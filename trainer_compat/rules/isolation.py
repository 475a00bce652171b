"""Findings about a target that took its isolated check down (``--isolate``): hangs, crashes, exits, memory.

These are report-level rules: no in-process check can observe them, so they are not in ``ALL_RULES``
(whose examples run in-process); ``trainer_compat.isolate`` reports them, one per failed target. They are
listed and documented with the others (``catalog.all_rules``); their cases are in tests/test_isolation_hostile.py.
"""

from __future__ import annotations

from typing import ClassVar

from trainer_compat.findings import Finding, Severity
from trainer_compat.versions import ALWAYS, VersionRange


class IsolationRule:
    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity] = Severity.ERROR
    summary: ClassVar[str]
    fix: ClassVar[str]
    produced_by: ClassVar[str] = "the isolated check (`--isolate`, the default), one per target it took down"
    fires: ClassVar[tuple[()]] = ()  # a target that hangs or crashes cannot be an in-process example
    silent: ClassVar[tuple[()]] = ()
    versions: ClassVar[VersionRange] = ALWAYS

    explanation: ClassVar[str]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.explanation = (f"{cls.summary} The check runs each target in a child process, so the other targets "
                           f"are still checked and this one is reported instead of taking the run down. "
                           f"Fix: {cls.fix}.")

    @classmethod
    def finding(cls, target: str, detail: str, version: str | None) -> Finding:
        del target  # the report names it
        return Finding(rule=cls.code, name=cls.name, severity=cls.severity, message=detail,
                       fix=cls.fix, transformers_version=version, details={"isolated": True})


class TargetHangs(IsolationRule):
    code = "TC801"
    name = "target-hangs"
    summary = "Importing, building or checking the target did not finish within the timeout."
    fix = ("make import and __init__ free of blocking work (network, locks, input()); raise --timeout if the "
           "model is only slow to build")


class TargetCrashes(IsolationRule):
    code = "TC802"
    name = "target-crashes"
    summary = "The process checking the target was killed by a signal (a segfault, an abort)."
    fix = "run the target's import and construction alone under a debugger (python -X faulthandler)"


class TargetExits(IsolationRule):
    code = "TC803"
    name = "target-exits"
    summary = "Importing or building the target ended the process (sys.exit, os._exit, exit())."
    fix = "move process-ending code under `if __name__ == '__main__':`; raise an exception instead"


class TargetExhaustsMemory(IsolationRule):
    code = "TC804"
    name = "target-exhausts-memory"
    summary = "Importing or building the target ran out of memory under the memory cap."
    fix = ("allocate tensors without an explicit device (they then land on the meta device during the check), "
           "or raise --memory-limit")


ISOLATION_RULES: tuple[type[IsolationRule], ...] = (TargetHangs, TargetCrashes, TargetExits, TargetExhaustsMemory)
BY_KIND: dict[str, type[IsolationRule]] = {"hang": TargetHangs, "crash": TargetCrashes, "exit": TargetExits,
                                           "memory": TargetExhaustsMemory}
