"""LibCST edits for ``trainer-compat fix``: add the shim block at the end of each class it fixes (several classes of
one file in one edit), drop the user's methods it replaces, add ``import inspect`` when the block needs it, where
ruff's isort rules would put it. Everything outside those nodes is left byte for byte: the encoding (coding cookie,
BOM) and the line endings (LF, CRLF, CR) included."""

from __future__ import annotations

import sys
from collections.abc import Sequence

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
    assert isinstance(first, (cst.SimpleStatementLine, cst.BaseCompoundStatement))  # every statement is one of these
    return [first.with_changes(leading_lines=[cst.EmptyLine(indent=False), *first.leading_lines]), *block[1:]]


class _AddToClass(cst.CSTTransformer):
    def __init__(self, edits: dict[str, tuple[list[cst.BaseStatement], set[str]]]) -> None:
        self.edits = {tuple(qualname.split(".")): edit for qualname, edit in edits.items()}
        self.stack: list[str] = []
        self.found: set[tuple[str, ...]] = set()

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
        here = tuple(self.stack)
        self.stack.pop()
        if here not in self.edits:
            return updated
        self.found.add(here)
        block, remove = self.edits[here]
        body = updated.body
        if isinstance(body, cst.IndentedBlock):
            statements = list(body.body)
        else:
            assert isinstance(body, cst.SimpleStatementSuite)  # the other suite: `class X: pass` on one line
            statements = [cst.SimpleStatementLine(body.body)]
        kept = [s for s in statements if not (isinstance(s, cst.FunctionDef) and s.name.value in remove)]
        kept = [] if len(kept) == 1 and _is_bare_pass(kept[0]) else kept  # `class X(Base): pass`
        if isinstance(body, cst.IndentedBlock):
            return updated.with_changes(body=body.with_changes(body=[*kept, *(_spaced(block) if kept else block)]))
        return updated.with_changes(body=cst.IndentedBlock(body=[*kept, *block]))


def _is_bare_pass(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1 \
        and isinstance(statement.body[0], cst.Pass) and not statement.leading_lines


def _imports(module: cst.Module, name: str, tops: set[str]) -> bool:
    """Whether ``import name`` runs before the first of the classes named ``tops`` is defined."""
    for statement in module.body:
        if isinstance(statement, cst.ClassDef) and statement.name.value in tops:
            return False
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, cst.Import) and any(
                        isinstance(a.name, cst.Name) and a.name.value == name and a.asname is None
                        for a in small.names):
                    return True
    return False


def _import_line(statement: cst.BaseStatement) -> tuple[str, bool] | None:
    """(top-level module, is a straight ``import x``) for a top-level line of imports; None for anything else."""
    if not isinstance(statement, cst.SimpleStatementLine) or not statement.body:
        return None
    small = statement.body[0]
    if isinstance(small, cst.Import):
        name = small.names[0].name
        return cst.Module([]).code_for_node(name).split(".")[0], True
    if isinstance(small, cst.ImportFrom):
        if small.relative or small.module is None:
            return ".", False
        return cst.Module([]).code_for_node(small.module).split(".")[0], False
    return None


def _section(top: str) -> int:
    """isort/ruff sections: 0 __future__, 1 standard library, 2 everything else (third party, first party, local)."""
    if top == "__future__":
        return 0
    return 1 if top in sys.stdlib_module_names else 2


def _is_docstring(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and isinstance(statement.body[0], cst.Expr) \
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))


def _leading_imports(body: Sequence[cst.BaseStatement]) -> list[tuple[int, str, bool]]:
    """(index, top-level module, straight) of the file's first block of imports: after the docstring, up to the first
    statement that is no import. Imports further down (after a class, after code) are another block to isort, and
    a line added there would run too late for the class body."""
    found = []
    for i in range(1 if body and _is_docstring(body[0]) else 0, len(body)):
        line = _import_line(body[i])
        if line is None:
            break
        found.append((i, *line))
    return found


def _add_import(module: cst.Module, name: str) -> cst.Module:
    """``import name`` (a standard-library module) where ruff's isort rules (I001) would put it: in the first block
    of imports, in the standard library section, straight imports before ``from`` imports, sorted; a new section of
    its own (blank lines around it) after ``__future__`` and before the third-party imports when the file has none."""
    body = list(module.body)
    new = cst.parse_statement(f"import {name}\n")
    imports = _leading_imports(body)
    stdlib = [(i, top, straight) for i, top, straight in imports if _section(top) == 1]
    blank = cst.EmptyLine(indent=False)
    if stdlib:
        after = [i for i, top, straight in stdlib if straight and top.lower() > name.lower()]
        straights = [i for i, _, straight in stdlib if straight]
        if after:
            at = after[0]
        elif straights:  # after the last straight import of the section: no blank line between them
            at = straights[-1] + 1
            body.insert(at, new)
            return module.with_changes(body=body)
        else:
            at = stdlib[0][0]  # before the section's first `from` import
        before = body[at]
        body[at] = before.with_changes(leading_lines=[])
        body.insert(at, new.with_changes(leading_lines=before.leading_lines))
        return module.with_changes(body=body)
    later = [i for i, top, _ in imports if _section(top) == 2]
    future = [i for i, top, _ in imports if _section(top) == 0]
    if later and (not future or later[0] > future[-1]):  # a section of its own before the third-party imports
        at = later[0]
        before = body[at]
        body[at] = before.with_changes(leading_lines=[blank])
        body.insert(at, new.with_changes(leading_lines=before.leading_lines or ([blank] if at else [])))
        return module.with_changes(body=body)
    at = future[-1] + 1 if future else (1 if body and _is_docstring(body[0]) else 0)
    body.insert(at, new.with_changes(leading_lines=[blank] if at else []))
    if at + 1 < len(body) and not any(isinstance(line, cst.EmptyLine) and line.comment is None
                                      for line in body[at + 1].leading_lines[:1]):
        gap = [blank, blank] if isinstance(body[at + 1], (cst.ClassDef, cst.FunctionDef)) else [blank]
        body[at + 1] = body[at + 1].with_changes(leading_lines=[*gap, *body[at + 1].leading_lines])
    return module.with_changes(body=body)


class NotFaithful(ValueError):
    """The file's bytes do not come back unchanged through the parser: it is left alone."""


def _edit(module: cst.Module, edits: dict[str, tuple[str, set[str]]], needs: tuple[str, ...]) -> cst.Module:
    editor = _AddToClass({name: (_parse_block(block), remove) for name, (block, remove) in edits.items()})
    module = module.visit(editor)
    missing = [name for name in edits if tuple(name.split(".")) not in editor.found]
    if missing:
        raise ClassNotFound(f"class {missing[0]} is not defined at the top level of the file (or nested in classes)")
    tops = {name.split(".")[0] for name in edits}
    for name in needs:
        if not _imports(module, name, tops):
            module = _add_import(module, name)
    return module


def add_block(source: str, qualname: str, block: str, remove: set[str], needs: tuple[str, ...] = ()) -> str:
    """``source`` with ``block`` appended to class ``qualname`` and the methods in ``remove`` dropped from it."""
    return _edit(cst.parse_module(source), {qualname: (block, remove)}, needs).code


def add_blocks(raw: bytes, edits: dict[str, tuple[str, set[str]]], needs: tuple[str, ...] = ()) -> bytes:
    """The file's bytes with each class's block added (``edits``: qualname -> (block, methods to drop)), in one
    edit. Its encoding, BOM and line endings are kept: LibCST writes the added lines with the file's own newline; a
    file whose lines end in CR alone is edited as LF and turned back. NotFaithful when the file does not survive
    an unedited round trip."""
    cr_only = b"\r" in raw and b"\n" not in raw
    module = parse(raw)
    new = _edit(module, edits, needs).bytes
    return new.replace(b"\n", b"\r") if cr_only else new


def parse(raw: bytes) -> cst.Module:
    """The file's bytes as a LibCST module (CR-only line ends read as LF); NotFaithful if they would not round-trip."""
    cr_only = b"\r" in raw and b"\n" not in raw
    source = raw.replace(b"\r", b"\n") if cr_only else raw
    module = cst.parse_module(source)
    if module.bytes != source:
        raise NotFaithful("the parser would not give its bytes back unchanged (mixed or unusual encoding)")
    return module


def defines(source: str | bytes, qualname: str, name: str) -> bool:
    """Whether class ``qualname`` defines ``name`` in its own body (a def or an assignment)."""
    module = parse(source) if isinstance(source, bytes) else cst.parse_module(source)
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
