"""``--probe`` isolates by default (a crash in the model's own native code cannot take the report down), and the
isolated child relays the probe's phases to the parent's terminal (issues #12 and #15)."""

from __future__ import annotations

import textwrap

from trainer_compat.isolate import Limits, check_isolated, isolate_by_default


class _Terminal:
    enabled = True

    def __init__(self) -> None:
        self.lines: list[str] = []

    def relay(self, line: str) -> None:
        self.lines.append(line)

    def start_target(self, index: int) -> None:
        pass

    def done_target(self, index: int, report: object) -> None:
        pass


def test_the_probe_isolates_by_default_in_every_format():
    assert isolate_by_default("full", probe=True) and isolate_by_default("json", probe=True)
    assert not isolate_by_default("full") and isolate_by_default("sarif")


def test_an_isolated_probe_relays_its_phases_to_a_terminal(tmp_path):
    (tmp_path / "slow.py").write_text(textwrap.dedent("""
        import time
        import torch.nn as nn
        from trainer_compat.testing import tiny_causal_lm

        class Slow(nn.Module):
            def __init__(self):
                super().__init__()
                self.model = tiny_causal_lm(tie=False)

            def forward(self, input_ids, attention_mask=None, labels=None):
                time.sleep(0.7)  # the probe outlasts the second after which its phases show
                return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    """), encoding="utf-8")
    terminal = _Terminal()
    request = {"spec": f"{tmp_path / 'slow.py'}:Slow", "probe": True, "args": {}}
    [report] = check_isolated([request], Limits(), terminal)
    assert not report.errors, [f.message for f in report.errors]
    assert any("probe" in line and "training step" in line for line in terminal.lines), terminal.lines
    assert terminal.lines[-1].endswith(")") and "done" in terminal.lines[-1]

    quiet = _Terminal()
    quiet.enabled = False  # not a terminal: the child sends nothing
    check_isolated([request], Limits(), quiet)
    assert quiet.lines == []
