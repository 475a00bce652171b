"""Whether a callable provably does nothing: a function (or lambda) whose body is only a docstring, ``pass``,
``...`` or ``return None``. What a catch-all ``__getattr__`` hands back for every missing name is often one."""

from __future__ import annotations

import dis
import functools
import inspect
from typing import Any

_NOTHING = frozenset({"RESUME", "NOP", "RETURN_VALUE", "RETURN_CONST", "LOAD_CONST", "POP_TOP", "CACHE"})


def does_nothing(value: Any) -> bool:
    """True for a Python function or bound method whose code only returns None (reads no argument, calls
    nothing, raises nothing); False for anything else, builtins and partials included (not provable)."""
    function = inspect.unwrap(value.__func__ if inspect.ismethod(value) else value)
    if isinstance(function, functools.partial) or not inspect.isfunction(function):
        return False
    code = function.__code__
    if code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR):
        return False
    for instruction in dis.get_instructions(code):
        if instruction.opname not in _NOTHING:
            return False
        if instruction.opname in ("LOAD_CONST", "RETURN_CONST") and instruction.argval not in (None, Ellipsis):
            return False
    return True


def describe_noop(name: str, value: Any, delegated: bool) -> str | None:
    """A clause for a finding when ``value`` does nothing (None otherwise)."""
    if not does_nothing(value):
        return None
    how = "reached through the class's __getattr__, is" if delegated else "is"
    return f"{name} {how} a callable that does nothing"
