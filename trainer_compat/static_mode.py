"""``--static``: check a class from its source alone, executing none of the user's code.

The class is read with ``ast`` and rebuilt as a stand-in: the same name, the same methods with the same
parameters (defaults and annotations dropped, bodies empty, code objects pointing at the real file and
lines, so every rule that reads a method's source reads the real one), literal class attributes, and the
bases that are the file's own classes, classes of other files of the project (``from pkg.base import Base``,
``from .base import Base``: read the same way, never imported), or come from torch / transformers / peft. Those
library bases are rebuilt the same way from the installed release's source (``library_source`` finds the
declaring file), so nothing is imported: only a base the source search cannot place (a transformers model class
re-exported through the lazy model registry) is imported for real, and the report says so.
The class-level rules then run on it unchanged; the report lists what could not be known without building
the model.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from trainer_compat import library_source
from trainer_compat.errors import TargetError
from trainer_compat.features import TrainingSetup
from trainer_compat.findings import Location
from trainer_compat.report import Report
from trainer_compat.subject import MemberInfo, Provenance, Subject, display_path

_TRUSTED = ("torch", "transformers", "peft")
_NOT_BUILT = "--static: nothing was imported or run (the state dict, submodules and member values are unknown)"


def check_static(spec: str, setup: TrainingSetup, target: str | None = None,
                 transformers_version: str | None = None) -> Report:
    from trainer_compat.checker import check_subject

    subject = static_subject(spec)
    subject.target = target or spec
    report = check_subject(subject, setup, transformers_version=transformers_version)
    report.skipped.extend(f"static: {note}" for note in subject.notes)
    if setup.requested:  # given fields were checked against the class's declared ones, not constructed
        from trainer_compat.static_args import NOT_VALIDATED

        report.skipped.append(f"static: {NOT_VALIDATED}")
    return report


def static_subject(spec: str) -> StaticSubject:
    module_part, sep, name = spec.rpartition(":")
    if not sep or not module_part or not name:
        raise TargetError(spec, "expected module:Name or path/to/file.py:Name")
    path = _source_path(spec, module_part)
    try:
        tree = _parse(path)
    except (SyntaxError, ValueError) as exc:
        where = f"{path}:{exc.lineno}" if isinstance(exc, SyntaxError) and exc.lineno else str(path)
        raise TargetError(spec, f"syntax error in {where}: {getattr(exc, 'msg', exc)}") from exc
    builder = _Builder(path, tree, {})
    node = builder.classes.get(name)
    if node is None:
        kind = "a function" if name in builder.functions else "not a top-level class"
        raise TargetError(spec, f"--static checks classes from their source; {name!r} in {path} is {kind} "
                                "(name the class, or run without --static)")
    try:
        cls = builder.build(name)
    except Exception as exc:  # e.g. a metaclass conflict between the resolved bases
        raise TargetError(spec, f"--static could not rebuild {name}: {type(exc).__name__}: {exc}") from exc
    return StaticSubject(cls=cls, target=spec, not_built=_NOT_BUILT, notes=builder.notes,
                         unknown_names=frozenset(builder.unevaluated.get(name, ())),
                         has_unknown_bases=builder.has_unknown_bases(name),
                         static_location=Location(display_path(str(path)), node.lineno))


@dataclass
class StaticSubject(Subject):
    notes: list[str] = field(default_factory=list)
    unknown_names: frozenset[str] = frozenset()
    has_unknown_bases: bool = False
    static_location: Location | None = None

    @cached_property
    def location(self) -> Location | None:
        return self.static_location

    def _lookup(self, name: str) -> MemberInfo:
        info = super()._lookup(name)
        if info.provenance is Provenance.MISSING and (self.has_unknown_bases or name in self.unknown_names):
            return MemberInfo(name, Provenance.UNKNOWN)
        return info


def _parse(path: Path) -> ast.Module:
    """The file's AST, parsed once however many of its classes are targets (keyed by its size and mtime, so an
    edited file is read again)."""
    stat = path.stat()
    return _parsed(path.resolve(), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _parsed(path: Path, mtime_ns: int, size: int) -> ast.Module:
    del mtime_ns, size  # the cache key only
    return ast.parse(path.read_bytes(), filename=str(path))


def _source_path(spec: str, module_part: str) -> Path:
    if module_part.endswith(".py"):
        path = Path(module_part)
        if not path.is_file():
            raise TargetError(spec, f"no such file {module_part}")
        return path
    relative = Path(*module_part.split("."))
    for entry in [str(Path.cwd()), *sys.path]:
        for candidate in (Path(entry or ".") / f"{relative}.py", Path(entry or ".") / relative / "__init__.py"):
            if candidate.is_file():
                return candidate
    raise TargetError(spec, f"no module named {module_part!r} (--static looks for its source file, without importing)")


class _Builder:
    """Stand-in classes for the classes of one file."""

    def __init__(self, path: Path, tree: ast.Module, project: dict[Path, _Builder],
                 library_module: str | None = None) -> None:
        self.path = path
        self.library = library_module is not None  # a file of torch / transformers / peft, named as installed
        self.project = project  # the builders of every file read so far (a base's file is read once)
        project[path.resolve()] = self
        self.classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        self.functions = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        self.imports = library_source.imports(tree)
        self.relative = library_source.relative_imports(tree)
        self.built: dict[str, type] = {}
        self.unknown_bases: dict[str, list[str]] = {}
        self.unevaluated: dict[str, list[str]] = {}
        self.notes: list[str] = []
        self.module = types.ModuleType(library_module) if library_module else self._fake_module()
        self.module.__file__ = str(path)  # a library module is never put in sys.modules: a real import must win

    def _fake_module(self) -> types.ModuleType:
        name = f"_trainer_compat_static_{abs(hash(str(self.path.resolve())))}"
        module = types.ModuleType(name)
        module.__file__ = str(self.path)
        sys.modules[name] = module  # lets inspect find the source of the stand-in classes
        return module

    def has_unknown_bases(self, name: str) -> bool:
        if self.unknown_bases.get(name):
            return True
        return any(self.has_unknown_bases(b) for b in self._local_bases(self.classes[name]))

    def _local_bases(self, node: ast.ClassDef) -> list[str]:
        return [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in self.classes]

    def build(self, name: str, seen: tuple[str, ...] = ()) -> type:
        if name in self.built:
            return self.built[name]
        if name in seen:
            raise TargetError(name, f"class {name} inherits from itself")
        node = self.classes[name]
        bases = tuple(self._base(node, b, (*seen, name)) for b in node.bases)
        bases = tuple(b for b in bases if b is not None) \
            or (() if self.library else (_library_class("torch.nn.Module"),))
        namespace: dict[str, Any] = {"__module__": self.module.__name__, "__qualname__": name,
                                     "__doc__": ast.get_docstring(node)}
        for stmt in node.body:
            self._member(name, stmt, namespace)
        cls = types.new_class(name, bases, exec_body=lambda ns: ns.update(namespace))
        setattr(self.module, name, cls)
        self.built[name] = cls
        return cls

    def _base(self, node: ast.ClassDef, expr: ast.expr, seen: tuple[str, ...]) -> type | None:
        if isinstance(expr, ast.Name) and expr.id in self.classes:
            return self.build(expr.id, seen)
        value = _resolve(expr, self.imports, self.notes)
        if isinstance(value, type):
            return value
        found = self._project_base(expr)
        if found is not None:
            builder, name = found
            cls = builder.build(name, seen)
            if builder.has_unknown_bases(name):
                self.unknown_bases.setdefault(node.name, []).append(f"{ast.unparse(expr)}'s bases")
            self.notes.extend(n for n in builder.notes if n not in self.notes)
            return cls
        if self.library:
            return None  # typing.Generic, abc.ABC, a mixin of another package: no protocol member comes from it
        text = ast.unparse(expr)
        self.unknown_bases.setdefault(node.name, []).append(text)
        self._note(f"{node.name}'s base {text} was not imported: what it defines is unknown")
        return None

    def _project_base(self, expr: ast.expr) -> tuple[_Builder, str] | None:
        """A base class imported from another file of the user's project: that file's builder and the class
        name, read from its source like the target's (never imported)."""
        if not isinstance(expr, ast.Name):
            return None
        if expr.id in self.relative:
            level, module, name = self.relative[expr.id]
            directory = self.path.parent
            for _ in range(level - 1):
                directory = directory.parent
            path = library_source.module_file_under(module, [directory]) if module else directory / "__init__.py"
        elif expr.id in self.imports and "." in self.imports[expr.id]:
            module, _, name = self.imports[expr.id].rpartition(".")
            if module.split(".")[0] in _TRUSTED and not self.library:
                return None
            roots = [self.path.parent, Path.cwd(), *map(Path, filter(None, sys.path))]
            path = library_source.module_file_under(module, roots)
        else:
            return None
        if path is None or not path.is_file():
            return None
        builder = self.project.get(path.resolve())
        if builder is None and self.library:
            builder = _library_builder(path)
        if builder is None:
            try:
                tree = _parse(path)
            except (SyntaxError, ValueError, OSError):
                return None
            builder = _Builder(path, tree, self.project)
        return (builder, name) if name in builder.classes else None

    def _member(self, owner: str, stmt: ast.stmt, namespace: dict[str, Any]) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            value = self._stub(owner, stmt)
            if value is not None:
                namespace[stmt.name] = value
            return
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            return
        for target in targets:
            if not isinstance(target, ast.Name):
                continue
            try:
                namespace[target.id] = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                if self.library:  # present, value unknown (``forward = _forward_unimplemented``)
                    namespace[target.id] = _LibraryValue(ast.unparse(value))
                    continue
                self.unevaluated.setdefault(owner, []).append(target.id)
                self._note(f"{owner}.{target.id} = {ast.unparse(value)[:60]} was not evaluated")

    def _stub(self, owner: str, node: ast.FunctionDef | ast.AsyncFunctionDef) -> Any:
        names = [d.id if isinstance(d, ast.Name) else d.attr if isinstance(d, ast.Attribute) else ""
                 for d in node.decorator_list]
        if "setter" in names or "deleter" in names:
            return None  # the property itself is what Trainer reads
        stub = ast.FunctionDef(name=node.name, args=library_source.bare_arguments(node.args), body=[ast.Pass()],
                               decorator_list=[], returns=None, type_comment=None)
        if "type_params" in ast.FunctionDef._fields:
            stub.type_params = []  # type: ignore[attr-defined]  # Python 3.12+ (tested above); mypy checks as 3.10
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        ast.copy_location(stub, node)
        stub.lineno = first
        ast.fix_missing_locations(stub)
        scope: dict[str, Any] = {"__name__": self.module.__name__}
        exec(compile(ast.Module(body=[stub], type_ignores=[]), str(self.path), "exec"), scope)  # our stub only
        function = scope[node.name]
        function.__qualname__ = f"{owner}.{node.name}"
        if "property" in names or "cached_property" in names:
            return property(function)
        if "staticmethod" in names:
            return staticmethod(function)
        if "classmethod" in names:
            return classmethod(function)
        return function

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def _resolve(expr: ast.expr, imports: dict[str, str], notes: list[str] | None = None) -> Any:
    """The class a base-class expression names, when it comes from torch, transformers or peft: rebuilt from the
    installed source; imported for real only when ``notes`` is given (a user's file) and the source search fails."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.insert(0, expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name) or expr.id not in imports:
        return None
    dotted = ".".join([imports[expr.id], *parts])
    top = dotted.split(".")[0]
    if top not in _TRUSTED or not _installed_library(top):
        return None
    rebuilt = _library_class(dotted)
    if rebuilt is not None or notes is None:
        return rebuilt
    note = f"{dotted} was imported ({top} re-exports it in a way its source does not show)"
    if note not in notes:
        notes.append(note)
    return _import_dotted(dotted)


class _LibraryValue:
    """A library class attribute whose value is not a literal (``forward = _forward_unimplemented``)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"<{self.text}>"


_LIBRARY_PROJECT: dict[Path, _Builder] = {}  # library files are the same for every target of a run


def _library_class(dotted: str) -> type | None:
    """The stand-in of a torch / transformers / peft class, rebuilt from the file that declares it."""
    found = library_source.declaring_file(dotted)
    if found is None:
        return None
    path, _, name = found
    builder = _library_builder(path)
    if builder is None:
        return None
    try:
        return builder.build(name)
    except Exception:  # e.g. a metaclass conflict among rebuilt bases: the caller imports it instead
        return None


def _library_builder(path: Path) -> _Builder | None:
    resolved = path.resolve()
    if resolved in _LIBRARY_PROJECT:
        return _LIBRARY_PROJECT[resolved]
    for top in _TRUSTED:
        root = library_source.package_root(top)
        if root is not None and root.resolve() in resolved.parents:
            tree = library_source.parsed(path)
            if tree is None:
                return None
            name = library_source.module_name(root.resolve(), top, resolved)
            return _Builder(path, tree, _LIBRARY_PROJECT, library_module=name)
    return None


def _installed_library(root: str) -> bool:
    """An installed package: found in the interpreter's stdlib or site-packages, never a same-named file of the
    user's project (a ``peft.py`` beside the target, wherever the cwd is)."""
    from trainer_compat.guard import is_user_file

    loaded = sys.modules.get(root)
    if loaded is not None:
        return not is_user_file(getattr(loaded, "__file__", None))
    try:
        spec = importlib.util.find_spec(root)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin is not None and not is_user_file(spec.origin)


def _import_dotted(dotted: str) -> Any:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                value = getattr(value, attr)
        except AttributeError:
            return None
        return value
    return None
