"""The model under check: its class, its instance when one could be built, and safe look-ups."""

from __future__ import annotations

import ast
import enum
import inspect
import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from trainer_compat import analysis
from trainer_compat.findings import Location

if TYPE_CHECKING:
    from torch import nn


class Provenance(str, enum.Enum):
    DEFINED = "defined"  # on the target class itself
    INHERITED = "inherited"  # on one of its base classes
    INSTANCE = "instance"  # set on the instance (an attribute or a submodule)
    DELEGATED = "delegated"  # reached through the class's own __getattr__
    MISSING = "missing"
    UNKNOWN = "unknown"  # class-only check: cannot tell
    BROKEN = "broken"  # the look-up raised something other than AttributeError


_MISSING = object()


@dataclass(frozen=True)
class MemberInfo:
    name: str
    provenance: Provenance
    owner: str | None = None
    location: Location | None = None
    error: str | None = None
    value: Any = field(default=_MISSING, repr=False, compare=False)

    @property
    def present(self) -> bool:
        return self.provenance not in (Provenance.MISSING, Provenance.BROKEN)

    def describe(self) -> str:
        if self.provenance is Provenance.INHERITED:
            return f"inherited from {self.owner}"
        if self.provenance is Provenance.DEFINED:
            return f"defined at {self.location}" if self.location else "defined on the class"
        if self.provenance is Provenance.DELEGATED:
            from trainer_compat.noop import does_nothing

            nothing = self.value is not _MISSING and does_nothing(self.value)
            return "delegated through __getattr__" + (" to a callable that does nothing" if nothing else "")
        if self.provenance is Provenance.BROKEN:
            return f"look-up raises {self.error}"
        return self.provenance.value


def source_location(obj: Any) -> Location | None:
    target = inspect.unwrap(obj) if callable(obj) else obj
    target = getattr(target, "__func__", target)
    try:
        file = inspect.getsourcefile(target)
        _, line = inspect.getsourcelines(target)
    except (TypeError, OSError):
        return None
    return Location(display_path(file), line or 1) if file else None


def display_path(file: str) -> str:
    """Relative to the working directory when the file lies under it (as linters print paths)."""
    try:
        return os.path.relpath(file) if not os.path.relpath(file).startswith("..") else file
    except ValueError:
        return file


def class_name(klass: type) -> str:
    """``module.Class``; for a class of a path target (imported under a minted module name), ``file.py:Class``."""
    if klass.__module__.startswith(("_trainer_compat_target_", "_trainer_compat_static_")):
        try:
            return f"{display_path(inspect.getsourcefile(klass) or '')}:{klass.__qualname__}"
        except TypeError:
            pass
    return f"{klass.__module__}.{klass.__qualname__}"


def parse_function(func: Any) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The AST of a function's source, or None when the source is not available."""
    func = getattr(func, "__func__", func)
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (TypeError, OSError, SyntaxError, IndentationError):
        return None
    node = tree.body[0] if tree.body else None
    return node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


@dataclass
class Subject:
    """A model class, and an instance of it unless it could not be built."""

    cls: type
    instance: nn.Module | None = None
    target: str = ""
    not_built: str | None = None  # why there is no instance
    rebuild: Any = field(default=None, repr=False)  # builds it again on the real device (set when on meta)

    @classmethod
    def of(cls, model: Any, target: str = "") -> Subject:
        if isinstance(model, type):
            return cls(cls=model, target=target or model.__qualname__)
        return cls(cls=type(model), instance=model, target=target or type(model).__qualname__)

    @cached_property
    def location(self) -> Location | None:
        return source_location(self.cls)

    @cached_property
    def custom_getattr(self) -> Any:
        """The class's own ``__getattr__``, when it overrides nn.Module's."""
        owner = analysis.owner_of(self.cls, "__getattr__")
        if owner is None or analysis.is_torch_module_class(owner):
            return None
        return vars(owner)["__getattr__"]

    def _class_owner(self, name: str) -> type | None:
        for klass in self.cls.__mro__:
            if name in vars(klass):
                return klass
        return None

    def member(self, name: str) -> MemberInfo:
        cache: dict[str, MemberInfo] = self.__dict__.setdefault("_members", {})
        if name not in cache:
            cache[name] = self._lookup(name)
        return cache[name]

    def _lookup(self, name: str) -> MemberInfo:
        owner = self._class_owner(name)
        if self.instance is not None and self._on_instance(name):
            return self._instance_member(name)
        if owner is not None:
            return self._class_member(name, owner)
        return self._member_elsewhere(name)

    def _instance_member(self, name: str) -> MemberInfo:
        value = self._get(name)
        if isinstance(value, _Failure):  # e.g. a __getattribute__ that raises
            return MemberInfo(name, Provenance.BROKEN, error=value.text)
        return MemberInfo(name, Provenance.INSTANCE, value=value)

    def _class_member(self, name: str, owner: type) -> MemberInfo:
        raw = vars(owner)[name]
        provenance = Provenance.DEFINED if owner is self.cls else Provenance.INHERITED
        location = source_location(raw) if callable(raw) or isinstance(raw, property) else None
        if isinstance(raw, property):
            location = source_location(raw.fget)
        info = MemberInfo(name, provenance, class_name(owner), location)
        if self.instance is None:
            return info
        value = self._get(name)
        if isinstance(value, _Failure):
            return MemberInfo(name, Provenance.BROKEN, info.owner, location, error=value.text)
        return MemberInfo(name, provenance, info.owner, location, value=value)

    def _member_elsewhere(self, name: str) -> MemberInfo:
        """Neither on the instance nor on a class: assigned in ``__init__`` (unbuilt), delegated, or missing."""
        if self.instance is None:
            if name in self.init_assignments:
                return MemberInfo(name, Provenance.INSTANCE)
            return MemberInfo(name, Provenance.UNKNOWN if self.custom_getattr else Provenance.MISSING)
        if self.custom_getattr is None:
            return MemberInfo(name, Provenance.MISSING)
        value = self._get(name)
        if isinstance(value, _Failure):
            if value.attribute_error:
                return MemberInfo(name, Provenance.MISSING)
            return MemberInfo(name, Provenance.BROKEN, error=value.text, location=source_location(self.custom_getattr))
        return MemberInfo(name, Provenance.DELEGATED, location=source_location(self.custom_getattr), value=value)

    def _on_instance(self, name: str) -> bool:
        state = vars(self.instance)
        if name in state:
            return True
        return any(name in (state.get(slot) or {}) for slot in ("_modules", "_parameters", "_buffers"))

    def _get(self, name: str) -> Any:
        try:
            return getattr(self.instance, name)
        except AttributeError as exc:
            return _Failure(f"AttributeError: {exc}", attribute_error=True)
        except RecursionError:
            return _Failure("RecursionError: maximum recursion depth exceeded")
        except BaseException as exc:  # a property or __getattr__ that raises (SystemExit too): report, never crash
            from trainer_compat.guard import describe, is_ours

            if is_ours(exc):  # the run's deadline or the user's Ctrl-C
                raise
            return _Failure(describe(exc))

    @cached_property
    def init_assignments(self) -> frozenset[str]:
        """Names assigned as ``self.NAME = ...`` in the ``__init__`` of the class or of a base (for class-only
        checks: ``PreTrainedModel.__init__`` sets ``config``), torch's Module excluded."""
        names: set[str] = set()
        for klass in self.cls.__mro__:
            init = vars(klass).get("__init__")
            if init is not None and not analysis.is_torch_module_class(klass):
                names |= _self_assignments(init)
        return frozenset(names)

    def submodules(self) -> Iterator[tuple[str, nn.Module]]:
        """Named submodules, the model itself excluded (empty without an instance)."""
        if self.instance is None:
            return iter(())
        return ((n, m) for n, m in self.instance.named_modules() if n)

    def pretrained_submodules(self) -> list[tuple[str, nn.Module]]:
        return analysis.inner_pretrained(self.instance) if self.instance is not None else []

    @property
    def is_pretrained(self) -> bool:
        return analysis.is_pretrained(self.cls)

    @property
    def is_peft(self) -> bool:
        return analysis.is_peft_model(self.cls)


@dataclass(frozen=True)
class _Failure:
    text: str
    attribute_error: bool = False


def _self_assignments(init: Any) -> set[str]:
    node = parse_function(init)
    if node is None:
        return set()
    names = set()
    for sub in ast.walk(node):
        targets = sub.targets if isinstance(sub, ast.Assign) else [getattr(sub, "target", None)]
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                names.add(t.attr)
    return names
