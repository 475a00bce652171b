"""A class whose construction returns no module is one clear line (exit 2), never an internal error; a module
whose ``__class__`` lies still gets a verdict, and the dry-run's verdict is the real Trainer's (issue #16)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TARGETS = Path(__file__).resolve().parent / "hostile" / "odd_classes.py"


def _check(name: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainer_compat", "check", f"{TARGETS}:{name}", "--format",
                           "concise", *options], capture_output=True, text=True, timeout=300)


def test_a_metaclass_that_returns_a_dict_is_one_line_in_every_mode():
    for options in ((), ("--isolate",)):
        done = _check("MetaDict", *options)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1 and "returned a dict, not a torch.nn.Module" in done.stderr, done.stderr
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr


def test_a_class_impostor_gets_a_verdict():
    done = _check("Impostor")
    assert done.returncode in (0, 1) and "Found" in done.stdout, done.stdout + done.stderr
    assert "internal error" not in done.stdout + done.stderr
