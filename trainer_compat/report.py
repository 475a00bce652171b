"""A Report: the findings about one target, plus what was looked at and what was skipped."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_compat.findings import Finding, Location, Severity


@dataclass(frozen=True)
class MemberRow:
    """Provenance of one protocol member on the target (for the report's member table)."""

    name: str
    provenance: str
    detail: str
    needed_by: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "provenance": self.provenance, "detail": self.detail,
                "needed_by": list(self.needed_by)}


@dataclass
class Report:
    target: str
    transformers_version: str
    torch_version: str
    trainer: str
    features: tuple[str, ...]
    findings: list[Finding] = field(default_factory=list)
    members: list[MemberRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # checks that could not run: "what: why"
    location: Location | None = None
    not_run: list[str] = field(default_factory=list)  # rule groups no option asked for: "TC600-TC609: why"

    @property
    def compatible(self) -> bool:
        return not any(f.severity is Severity.ERROR for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    def codes(self) -> set[str]:
        return {f.rule for f in self.findings}

    def verdict(self) -> str:
        errors, warnings = len(self.errors), len(self.warnings)
        head = "compatible" if self.compatible else "NOT compatible"
        return (f"{self.target}: {head} with transformers {self.transformers_version} {self.trainer} "
                f"({errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "compatible": self.compatible,
            "transformers": self.transformers_version,
            "trainer": self.trainer,
            "features": list(self.features),
            "location": self.location.to_dict() if self.location else None,
            "findings": [f.to_dict() for f in self.findings],
            "members": [m.to_dict() for m in self.members],
            "skipped": list(self.skipped),
            "not_run": list(self.not_run),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], torch_version: str = "") -> Report:
        """The inverse of ``to_dict`` (the torch version is not in the dict): how an isolated check's report
        crosses the process boundary."""
        return cls(target=data["target"], transformers_version=data["transformers"], torch_version=torch_version,
                   trainer=data["trainer"], features=tuple(data["features"]),
                   findings=[Finding.from_dict(f) for f in data["findings"]],
                   members=[MemberRow(m["name"], m["provenance"], m["detail"], tuple(m["needed_by"]))
                            for m in data["members"]],
                   skipped=list(data["skipped"]), location=Location.from_dict(data.get("location")),
                   not_run=list(data.get("not_run") or []))

    def under(self, root: Path, cwd: Path | None = None) -> Report:
        """This report with every location relative to the project root (the directory of the config file), as a
        pull request shows the files, whatever folder the check ran from."""
        cwd = cwd or Path.cwd()
        return dataclasses.replace(self, findings=[f.under(root, cwd) for f in self.findings],
                                   location=self.location.under(root, cwd) if self.location else None)

    def with_not_run(self, *, probe: bool, peft: bool, sft: bool, data: bool, trl_rl: bool = False) -> Report:
        """This report with a note for each rule group the options did not switch on (JUnit's skipped cases)."""
        on = {"probe": probe, "peft": peft, "sft": sft, "data": data, "trl_rl": trl_rl,
              "fsdp": "fsdp" in self.features, "deepspeed": "deepspeed" in self.features}
        notes = [f"{codes}: {why}" for codes, key, why in GATED if not on[key]]
        return dataclasses.replace(self, not_run=[*self.not_run, *(n for n in notes if n not in self.not_run)])

    def skipped_rules(self, codes: Iterable[str]) -> dict[str, str]:
        """Which of ``codes`` did not run, and why: from the notes (skipped or not run) that name rule codes."""
        out: dict[str, str] = {}
        for note in (*self.skipped, *self.not_run):
            suppressed = _SUPPRESSED.match(note)
            named, why = (suppressed.group(1), note) if suppressed else note.partition(": ")[::2]
            numbers = _code_ranges(named)
            if numbers is None:
                continue
            for code in codes:
                if code not in out and any(lo <= _number(code) <= hi for lo, hi in numbers):
                    out[code] = why
        return out

    def __str__(self) -> str:
        from trainer_compat.render.text import render_text

        return render_text([self])


# Rule groups that run only when an option asks for them: (their codes, the option's key, the note's reason).
GATED: tuple[tuple[str, str, str], ...] = (
    ("TC600-TC609, TC1204", "probe", "the dry-run rules need --probe"),
    ("TC701-TC704", "data", "the data rules need --data (or preflight(trainer))"),
    ("TC1001-TC1003, TC1005", "peft", "the PEFT rules need --peft"),
    ("TC1101-TC1104", "sft", "the TRL rules need --trainer sft"),
    ("TC1105-TC1109", "trl_rl", "the DPO/Reward/GRPO rules need --trainer dpo, reward or grpo"),
    ("TC1201, TC1202, TC1206", "fsdp", "the FSDP rules need fsdp in --args"),
    ("TC1203", "deepspeed", "the DeepSpeed rule needs deepspeed in --args"),
)
_SUPPRESSED = re.compile(r"(TC\d+) suppressed at ")
_RANGE = re.compile(r"TC(\d+)(?:-TC(\d+))?")


def _number(code: str) -> int:
    return int(code.removeprefix("TC")) if code.removeprefix("TC").isdigit() else -1


def _code_ranges(text: str) -> list[tuple[int, int]] | None:
    """``TC600-TC609, TC1204`` as [(600, 609), (1204, 1204)]; None when ``text`` is not only rule codes."""
    parts = [p.strip() for p in text.split(",")]
    matches = [_RANGE.fullmatch(p) for p in parts]
    if not parts or not all(matches):
        return None
    return [(int(m.group(1)), int(m.group(2) or m.group(1))) for m in matches if m]
