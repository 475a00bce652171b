"""What patch (or fix) did: the shims, what they replaced, what could not be delegated, and the re-check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer_compat.findings import Finding
from trainer_compat.report import Report
from trainer_compat.shims.plan import Notes, Plan


def _key(f: Finding) -> tuple[str, str | None]:
    return (f.rule, f.member)


def fixed_findings(before: Report, after: Report) -> list[Finding]:
    left = {_key(f) for f in after.findings}
    return [f for f in before.findings if _key(f) not in left]


def delegates_text(plan: Plan) -> list[str]:
    lines = []
    if plan.checkpointing:
        lines.append(f"{', '.join(plan.checkpointing)} -> {', '.join('self.' + c for c in plan.carriers)}")
    lm_members = [m for m in plan.members if m not in plan.checkpointing and m not in (
        "tie_weights", "_no_split_modules", "_keys_to_ignore_on_save", "state_dict", "__getattr__", "forward",
        "accepts_loss_kwargs")]
    if lm_members and plan.lm:
        lines.append(f"{', '.join(lm_members)} -> self.{plan.lm}")
    if plan.tie_weights:
        lines.append(f"tie_weights -> {', '.join('self.' + p for p in plan.tie_weights)}")
    extras = {"_no_split_modules": f"_no_split_modules = {list(plan.no_split_modules or ())}",
              "_keys_to_ignore_on_save": "_keys_to_ignore_on_save = None",
              "forward": "forward: a pass-through with the inner forward's signature (Trainer keeps the columns)",
              "accepts_loss_kwargs": "accepts_loss_kwargs = False (forward takes **kwargs but never uses "
                                     "num_items_in_batch)",
              "state_dict": "state_dict: tied tensors saved as copies (safetensors refuses shared memory)",
              "__getattr__": "__getattr__: a recursion guard around the class's own __getattr__"}
    lines += [text for name, text in extras.items() if name in plan.members]
    return lines


def _first_line(text: str) -> str:
    return (text.splitlines() or [""])[0]


@dataclass
class PatchResult:
    model: Any
    plan: Plan
    notes: Notes
    before: Report
    after: Report
    unchanged: bool = False  # the model already carried exactly these shims

    @property
    def applied(self) -> list[str]:
        return self.plan.members

    @property
    def replaced(self) -> dict[str, str]:
        return dict(self.notes.replaced)

    @property
    def undelegable(self) -> dict[str, str]:
        return dict(self.notes.undelegable)

    @property
    def fixed(self) -> list[Finding]:
        return fixed_findings(self.before, self.after)

    @property
    def left(self) -> list[Finding]:
        return list(self.after.findings)

    @property
    def compatible(self) -> bool:
        return self.after.compatible

    def __str__(self) -> str:
        name = self.before.target
        lines = [f"{name}: " + ("already patched, nothing changed" if self.unchanged else
                                "patched" if self.applied else "nothing to delegate")]
        if self.notes.inside:
            lines.append(f"  patched inside: {self.notes.inside}, which it reaches through __getattr__")
        lines += [f"  shim {text}" for text in delegates_text(self.plan)]
        lines += [f"  replaced {m}: {why}" for m, why in self.replaced.items()]
        if self.notes.ambiguous:
            lines.append(f"  ambiguous: several models could be the language model ({', '.join(self.notes.ambiguous)})"
                         "; pass delegate_to= (--delegate-to) to choose")
        lines += [f"  cannot delegate {m}: {why}" for m, why in self.undelegable.items()]
        # each message's first line whole: a cut at a fixed width broke words ("model.gradient_c")
        lines += [f"  fixed {f.rule} {f.member or ''}: {_first_line(f.message)}" for f in self.fixed]
        lines += [f"  left  {f.rule} {f.severity.value} {f.member or ''}: {_first_line(f.message)}"
                  + (f"\n        fix: {f.fix}" if f.fix else "") for f in self.left]
        lines.append(f"  {name} is {'now ' if self.compatible else 'still NOT '}compatible "
                     f"(transformers {self.after.transformers_version})")
        return "\n".join(lines)
