"""Within one run, each source file is parsed once to place its classes.

Before Python 3.13, ``inspect.findsource(cls)`` parses the whole file for every call (its ``_ClassFinder``), so
each target paid again for the size of its file: 500 classes from one file cost ~0.3 s per target. ``per_run``
answers class look-ups from one parse per file (the same first-match rule) and falls back to inspect's own.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import sys
from collections.abc import Iterator
from typing import Any


class _Classes(ast.NodeVisitor):
    """qualname -> 0-based line of the first class of that name (its first decorator), as inspect finds it."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.lines: dict[str, int] = {}

    def visit_FunctionDef(self, node: Any) -> None:
        self.stack += [node.name, "<locals>"]
        self.generic_visit(node)
        del self.stack[-2:]

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.stack.append(node.name)
        first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        self.lines.setdefault(".".join(self.stack), first - 1)
        self.generic_visit(node)
        self.stack.pop()


@contextlib.contextmanager
def per_run() -> Iterator[None]:
    if sys.version_info >= (3, 13) or getattr(inspect.findsource, "_trainer_compat", False):
        yield  # 3.13 reads __firstlineno__; a run inside a run shares the outer cache
        return
    original = inspect.findsource
    parsed: dict[tuple[str, int], dict[str, int]] = {}

    def findsource(object: Any) -> tuple[list[str], int]:  # inspect.findsource's parameter name
        if not inspect.isclass(object):
            return original(object)
        lines, _ = _module_lines(object, original)
        key = (inspect.getsourcefile(object) or "", id(lines))
        if key not in parsed:
            finder = _Classes()
            try:
                finder.visit(ast.parse("".join(lines)))
            except (SyntaxError, ValueError, RecursionError):
                return original(object)
            parsed[key] = finder.lines
        found = parsed[key].get(object.__qualname__)
        return (lines, found) if found is not None else original(object)

    findsource._trainer_compat = True  # type: ignore[attr-defined]  # marks our stand-in on the function object
    inspect.findsource = findsource
    try:
        yield
    finally:
        inspect.findsource = original


def _module_lines(obj: Any, original: Any) -> tuple[list[str], int]:
    """The file's lines as inspect reads them (linecache: the same list object until the file changes)."""
    module = inspect.getmodule(obj)
    if module is None:
        raise OSError("source code not available")
    return original(module)
