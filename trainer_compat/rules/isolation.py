"""Findings about a target that took its isolated check down (``--isolate``): hangs, crashes, exits, memory.

These are report-level rules: no in-process check can observe them, so they carry no in-process examples;
``trainer_compat.isolate`` (and the guard of an in-process run) reports them, one per failed target. They are
listed, documented and selected with the others; their cases are in tests/test_isolation_hostile.py and
tests/test_hostile_guard.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from trainer_compat.findings import Finding, Severity
from trainer_compat.rules.base import Context, Rule


class IsolationRule(Rule):
    severity: ClassVar[Severity] = Severity.ERROR
    fix: ClassVar[str]
    produced_by: ClassVar[str | None] = "the isolated check (`--isolate`, the default), one per target it took down"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if "summary" in vars(cls):  # the explanation is built before Rule validates it
            cls.explanation = (f"{cls.summary} The check runs each target in a child process, so the other "
                               f"targets are still checked and this one is reported instead of taking the run "
                               f"down. Fix: {cls.fix}.")
        super().__init_subclass__(**kwargs)

    def check(self, ctx: Context) -> Iterator[Finding]:
        return iter(())  # no in-process check can observe a target taking its process down

    @classmethod
    def failure(cls, detail: str, version: str | None) -> Finding:
        """The finding for a target whose check this took down (the report names the target)."""
        return cls.make(detail, version=version, fix=cls.fix, isolated=True)


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
