"""Importable safely; each class raises a BaseException, blocks, or changes process state when built or checked.
tests/test_hostile_guard.py runs them (never import this module yourself outside trainer-compat)."""

import logging
import os
import signal
import sys
import time
import warnings

import torch
import torch.nn as nn

from trainer_compat.testing import tiny_causal_lm


class _Base(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class ConfigSysExit0(_Base):
    @property
    def config(self):
        raise SystemExit(0)


class KeysSysExit3(_Base):
    @property
    def _keys_to_ignore_on_save(self):
        raise SystemExit(3)


class GetattrKeyboardInterrupt(_Base):
    def __getattr__(self, name):
        if name in ("model", "_modules", "_parameters", "_buffers"):
            return super().__getattr__(name)
        raise KeyboardInterrupt(name)


class GetattrGeneratorExit(_Base):
    def __getattr__(self, name):
        if name in ("model", "_modules", "_parameters", "_buffers"):
            return super().__getattr__(name)
        raise GeneratorExit(name)


class InitKeyboardInterrupt(_Base):
    def __init__(self):
        super().__init__()
        raise KeyboardInterrupt("from __init__")


class InitGeneratorExit(_Base):
    def __init__(self):
        super().__init__()
        raise GeneratorExit()


class InitInput(_Base):
    def __init__(self):
        super().__init__()
        self.answer = input("weights path? ")


class InitReadsStdin(_Base):
    def __init__(self):
        super().__init__()
        self.text = sys.stdin.read()  # empty under trainer-compat, never a hang


class InitReadsFd0(_Base):
    def __init__(self):
        super().__init__()
        self.text = os.read(0, 10)


class InitAlarm(_Base):
    """An alarm whose handler would end the process with exit 0 after the report is written."""

    def __init__(self):
        super().__init__()
        signal.signal(signal.SIGALRM, lambda *a: sys.exit(0))
        signal.setitimer(signal.ITIMER_REAL, 0.2)


class InitSigintHandler(_Base):
    def __init__(self):
        super().__init__()
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def factory_breakpoint():
    breakpoint()
    return _Base()


class InitSleeps(_Base):
    def __init__(self):
        super().__init__()
        time.sleep(60)


class ForwardSleeps(_Base):
    def forward(self, input_ids, attention_mask=None, labels=None):
        time.sleep(60)


class ParametersForever(_Base):
    def parameters(self, recurse=True):
        while True:
            yield from super().parameters(recurse)


class ChangesState(_Base):
    """Process-global state a target can change; none of it may reach the next target."""

    def __init__(self):
        super().__init__()
        torch.set_grad_enabled(False)
        torch.set_default_dtype(torch.float64)
        torch.use_deterministic_algorithms(True)
        os.chdir(os.path.dirname(os.path.abspath(__file__)))
        sys.path.insert(0, "/nonexistent/trainer-compat-hostile")
        logging.getLogger("transformers").setLevel(logging.DEBUG)
        logging.disable(logging.CRITICAL)
        warnings.simplefilter("error")
        os.environ["TC_HOSTILE_LEAK"] = "1"


class NoopGetattr(_Base):
    """A catch-all __getattr__ that hands out a do-nothing callable for every missing name."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return lambda *args, **kwargs: None
