"""Importable safely; hostile when built, looked up or inspected."""

import sys

import torch
import torch.nn as nn

from trainer_compat.testing import tiny_causal_lm


class Fine(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)
        self.config = self.model.config

    def forward(self, input_ids, attention_mask=None, labels=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


class RaisesValueError(nn.Module):
    def __init__(self):
        super().__init__()
        raise ValueError("no GPU found")


class SysExitInInit(nn.Module):
    def __init__(self):
        super().__init__()
        sys.exit(3)


class RecursionInInit(nn.Module):
    def __init__(self):
        super().__init__()
        self.__init__()


class InitReturnsValue(nn.Module):
    def __init__(self):
        super().__init__()
        return 42  # TypeError: __init__() should return None


class RecursiveGetattr(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    def __getattr__(self, name):
        return getattr(self.model, name)

    def forward(self, input_ids, labels=None):
        return self.model(input_ids=input_ids, labels=labels)


class PropertyRaises(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = tiny_causal_lm(tie=False)

    @property
    def config(self):
        raise RuntimeError("config is not loaded yet")

    def forward(self, input_ids, labels=None):
        return self.model(input_ids=input_ids, labels=labels)


class ClassTrick(Fine):
    @property
    def __class__(self):
        return int


class DirRaises(Fine):
    def __dir__(self):
        raise RuntimeError("no dir for you")


class StateDictRaises(Fine):
    def state_dict(self, *args, **kwargs):
        raise RuntimeError("state dict is sharded elsewhere")


class SignatureRaises(Fine):
    @property
    def __signature__(self):
        raise RuntimeError("signature exploded")


def _huge_forward():
    names = ", ".join(f"p{i}=None" for i in range(2000))
    scope = {}
    exec(f"def forward(self, input_ids, {names}, labels=None):\n    return None", scope)
    return scope["forward"]


class HugeSignature(Fine):
    forward = _huge_forward()


class ForwardNotCallable(Fine):
    forward = 42


class GetattributeRaises(Fine):
    def __getattribute__(self, name):
        if name in ("config", "gradient_checkpointing_enable", "generation_config"):
            raise KeyError(name)
        return super().__getattribute__(name)


class Meta(type(nn.Module)):
    def __getattribute__(cls, name):
        if name == "__mro__":
            raise RuntimeError("no mro")
        return super().__getattribute__(name)


class MetaclassTrick(nn.Module, metaclass=Meta):
    def forward(self, input_ids):
        return input_ids


class NeedsEverything(nn.Module):
    def __init__(self, a, b, *, c):
        super().__init__()


class NotAModule:
    def forward(self):
        return None


def factory_raises():
    raise OSError("weights not found")


def factory_returns_none():
    return None


def factory_sys_exit():
    raise SystemExit("bye")


def factory_needs_args(path):
    return Fine()


class _Module(nn.Module):
    pass


module_without_forward = _Module()
an_int = 7
a_lambda = lambda: 1  # noqa: E731


# only under --isolate: these take the process down


class Hangs(nn.Module):
    def __init__(self):
        super().__init__()
        import time

        while True:
            time.sleep(0.05)


class OsExit(nn.Module):
    def __init__(self):
        super().__init__()
        import os

        os._exit(7)


class Segfaults(nn.Module):
    def __init__(self):
        super().__init__()
        import ctypes

        ctypes.string_at(0)


class EatsMemory(nn.Module):
    def __init__(self):
        super().__init__()
        hoard = []
        while True:  # 1 GiB at a time, untouched (fast): only the memory cap stops it
            hoard.append(torch.empty(1 << 28, device="cpu"))


class HugeRealTensor(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(1 << 33, device="cpu"))
