"""LibCST edits for ``trainer-compat fix``: add the shim block at the end of one class, drop the user's methods it
replaces, add ``import inspect`` when the block needs it. Everything outside those nodes is left byte for byte."""

from __future__ import annotations

import libcst as cst


class ClassNotFound(LookupError):
    pass


def _parse_block(block: str) -> list[cst.BaseStatement]:
    wrapper = cst.parse_module("class _TrainerCompatBlock:\n" + block)
    body = wrapper.body[0].body
    assert isinstance(body, cst.IndentedBlock)
    return list(body.body)


def _spaced(block: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
    first = block[0]
    return [first.with_changes(leading_lines=[cst.EmptyLine(indent=False), *first.leading_lines]), *block[1:]]


class _AddToClass(cst.CSTTransformer):
    def __init__(self, qualname: str, block: list[cst.BaseStatement], remove: set[str]) -> None:
        self.path = qualname.split(".")
        self.stack: list[str] = []
        self.block = block
        self.remove = remove
        self.found = False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.stack.append(node.name.value)
        return True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.stack.append(f"<{node.name.value}>")  # a class inside a function is not addressable by qualname
        return True

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self.stack.pop()
        return updated

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        here = self.stack == self.path
        self.stack.pop()
        if not here:
            return updated
        self.found = True
        body = updated.body
        statements = list(body.body) if isinstance(body, cst.IndentedBlock) else [cst.SimpleStatementLine(body.body)]
        kept = [s for s in statements if not (isinstance(s, cst.FunctionDef) and s.name.value in self.remove)]
        kept = [] if len(kept) == 1 and _is_bare_pass(kept[0]) else kept  # `class X(Base): pass`
        block = _spaced(self.block) if kept else self.block
        if isinstance(body, cst.IndentedBlock):
            return updated.with_changes(body=body.with_changes(body=[*kept, *block]))
        return updated.with_changes(body=cst.IndentedBlock(body=[*kept, *self.block]))


def _is_bare_pass(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1 \
        and isinstance(statement.body[0], cst.Pass) and not statement.leading_lines


def _imports(module: cst.Module, name: str) -> bool:
    for statement in module.body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, cst.Import) and any(
                        isinstance(a.name, cst.Name) and a.name.value == name and a.asname is None
                        for a in small.names):
                    return True
    return False


def _add_import(module: cst.Module, name: str) -> cst.Module:
    """``import name`` after the last top-level import (or after the docstring / at the top)."""
    body = list(module.body)
    at = 0
    for i, statement in enumerate(body):
        if isinstance(statement, cst.SimpleStatementLine) and any(
                isinstance(s, (cst.Import, cst.ImportFrom)) for s in statement.body):
            at = i + 1
        elif i == 0 and isinstance(statement, cst.SimpleStatementLine) and isinstance(
                statement.body[0], cst.Expr) and isinstance(statement.body[0].value, cst.SimpleString):
            at = 1
    body.insert(at, cst.parse_statement(f"import {name}\n"))
    return module.with_changes(body=body)


def add_block(source: str, qualname: str, block: str, remove: set[str], needs: tuple[str, ...] = ()) -> str:
    """``source`` with ``block`` appended to class ``qualname`` and the methods in ``remove`` dropped from it."""
    module = cst.parse_module(source)
    editor = _AddToClass(qualname, _parse_block(block), remove)
    module = module.visit(editor)
    if not editor.found:
        raise ClassNotFound(f"class {qualname} is not defined at the top level of the file (or nested in classes)")
    for name in needs:
        if not _imports(module, name):
            module = _add_import(module, name)
    return module.code


def defines(source: str, qualname: str, name: str) -> bool:
    """Whether class ``qualname`` defines ``name`` in its own body (a def or an assignment)."""
    module = cst.parse_module(source)
    found: list[bool] = []

    class Finder(cst.CSTVisitor):
        def __init__(self) -> None:
            self.stack: list[str] = []

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            self.stack.append(node.name.value)
            if self.stack == qualname.split(".") and isinstance(node.body, cst.IndentedBlock):
                found.append(any(isinstance(s, cst.FunctionDef) and s.name.value == name for s in node.body.body))
            return True

        def leave_ClassDef(self, node: cst.ClassDef) -> None:
            self.stack.pop()

    module.visit(Finder())
    return any(found)
