"""TARGET strings: ``package.module:Name`` or ``path/to/file.py:Name``."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainer_compat.errors import TargetError

# one dict per open ``per_run`` (innermost last): module text or resolved path -> module, for that run
_RUNS: list[dict[str, Any]] = []


@contextlib.contextmanager
def per_run() -> Iterator[None]:
    """Within one run, a module several targets come from is imported once (the guard takes user modules out
    of ``sys.modules`` after each target; this cache brings the target's own back). Dropped when the run ends."""
    from trainer_compat import source_cache

    _RUNS.append({})
    try:
        with source_cache.per_run():  # each file parsed once to place its classes
            yield
    finally:
        _RUNS.pop()


def run_scoped(name: str) -> dict[str, Any]:
    """A cache that lives as long as the innermost open run (a fresh, unshared dict outside any run)."""
    return _RUNS[-1].setdefault(f"\0{name}", {}) if _RUNS else {}


def load_target(spec: str) -> Any:
    """Import the module and return the named object (class, factory or instance)."""
    module_part, sep, name = spec.rpartition(":")
    if not sep or not module_part or not name:
        raise TargetError(spec, "expected module:Name or path/to/file.py:Name")
    if len(spec) > _LONGEST:
        raise TargetError(spec[:80] + "...", f"a target of {len(spec)} characters: expected module:Name")
    module = _cached_module(spec, module_part)
    obj: Any = module
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(spec, f"{module_part} has no attribute {name!r}") from None
        except BaseException as exc:  # a module __getattr__ may raise anything
            _raise_ours(exc)
            raise TargetError(spec, f"looking up {name!r} raised {type(exc).__name__}: {exc}") from exc
    return obj


_LONGEST = 1024


def _cached_module(spec: str, module_part: str) -> Any:
    is_path = module_part.endswith(".py")
    try:
        key = str(Path(module_part).resolve()) if is_path else module_part
    except OSError as exc:
        raise TargetError(spec, f"cannot read {module_part}: {exc.strerror or exc}") from None
    run = _RUNS[-1] if _RUNS else None
    module = run.get(key) if run is not None else None
    if module is not None:
        sys.modules.setdefault(module.__name__, module)  # the guard took it out after the last target
        return module
    module = _import_path(spec, module_part) if is_path else _import_module(spec, module_part)
    if run is not None:
        run[key] = module
    return module


def _import_module(spec: str, dotted: str) -> Any:
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        raise TargetError(spec, f"no module named {exc.name!r}") from exc
    except SyntaxError as exc:
        raise TargetError(spec, _syntax_error(exc, dotted)) from exc
    except BaseException as exc:  # import-time code may raise anything, SystemExit included
        _raise_ours(exc)
        raise TargetError(spec, f"importing {dotted} raised {type(exc).__name__}: {exc}") from exc


def _raise_ours(exc: BaseException) -> None:
    """The guard's deadline and the user's Ctrl-C pass through; whatever else import-time code raised is the
    target's."""
    from trainer_compat.guard import is_ours

    if is_ours(exc):
        raise exc


def package_root(path: Path) -> tuple[Path, str] | None:
    """For a file inside a package (its folder has ``__init__.py``): the folder above the outermost package and the
    file's dotted module name, found as pytest's rootdir/importlib modes do (walk up while ``__init__.py`` exists).
    None for a file outside any package."""
    path = path.resolve()
    folder, parts = path.parent, [path.stem]
    while (folder / "__init__.py").is_file():
        parts.append(folder.name)
        folder = folder.parent
    if len(parts) == 1 or not all(p.isidentifier() for p in parts):
        return None
    return folder, ".".join(reversed(parts))


def _import_path(spec: str, path_text: str) -> Any:
    path = Path(path_text)
    if not path.is_file():
        raise TargetError(spec, f"no such file {path_text}")
    packaged = package_root(path)
    if packaged is not None:  # myproj/lora.py doing `from myproj.x import y`: import it as myproj.lora
        module = _import_packaged(spec, path, *packaged)
        if module is not None:
            return module
    module_name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else \
        f"_trainer_compat_target_{abs(hash(str(path.resolve())))}"
    parent = str(path.resolve().parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)  # sibling imports of the target file
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise TargetError(spec, f"cannot import {path_text}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise TargetError(spec, _syntax_error(exc, path_text)) from exc
    except BaseException as exc:
        del sys.modules[module_name]
        _raise_ours(exc)
        if isinstance(exc, ModuleNotFoundError):
            raise TargetError(spec, f"no module named {exc.name!r}") from exc
        raise TargetError(spec, f"importing {path_text} raised {type(exc).__name__}: {exc}") from exc
    return module


def _same_file(module: Any, path: Path) -> bool:
    file = getattr(module, "__file__", None)
    try:
        return file is not None and Path(file).resolve() == path.resolve()
    except OSError:
        return False


def _import_packaged(spec: str, path: Path, root: Path, dotted: str) -> Any:
    """The file imported under its dotted name with the package root's parent on sys.path, whichever targets came
    before; None when that name is taken by another file (another checkout's package of the same name): the caller
    then loads the file by path, with the package root still importable."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    top = dotted.split(".", maxsplit=1)[0]
    loaded = sys.modules.get(top)
    if loaded is not None and not any(Path(p).resolve() == (root / top).resolve()
                                      for p in getattr(loaded, "__path__", ())):
        return None
    existing = sys.modules.get(dotted)
    if existing is not None:
        return existing if _same_file(existing, path) else None
    try:
        module = importlib.import_module(dotted)
    except SyntaxError as exc:
        raise TargetError(spec, _syntax_error(exc, str(path))) from exc
    except ModuleNotFoundError as exc:
        raise TargetError(spec, f"no module named {exc.name!r}") from exc
    except BaseException as exc:  # import-time code may raise anything, SystemExit included
        _raise_ours(exc)
        raise TargetError(spec, f"importing {dotted} raised {type(exc).__name__}: {exc}") from exc
    return module if _same_file(module, path) else None


def _syntax_error(exc: SyntaxError, where: str) -> str:
    place = f"{exc.filename}:{exc.lineno}" if exc.filename and exc.lineno else (exc.filename or where)
    return f"syntax error in {place}: {exc.msg}"
