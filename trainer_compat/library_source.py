"""Where a library class is declared, found by reading the installed package's source (``--static``).

``torch.nn.Module`` is declared in ``torch/nn/modules/module.py`` and re-exported by ``torch/nn/__init__.py``
through a star import; ``transformers.PreTrainedModel`` in ``transformers/modeling_utils.py``, named by the
package's lazy ``__init__``. Following the imports of the package's files (named imports first, then star
imports) finds the declaring file without importing anything, so ``--static`` rebuilds a wrapper's library
bases from the same source the installed release runs.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
from functools import cache, lru_cache
from pathlib import Path

_MAX_FILES = 40  # a search that reads more files than this gives up (the caller then imports the library)


@cache
def package_root(package: str) -> Path | None:
    """The installed top-level package's folder, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def module_file(module: str) -> Path | None:
    """The source file of an installed module (``transformers.trainer``), found without importing its package."""
    top, *parts = module.split(".")
    root = package_root(top)
    return _module_path(root, parts) if root is not None else None


def declaring_file(dotted: str) -> tuple[Path, str, str] | None:
    """``(file, module name, class name)`` that declares the class ``dotted`` names (``torch.nn.Module``)."""
    top, *rest = dotted.split(".")
    root = package_root(top)
    if root is None or not rest:
        return None
    *modules, name = rest
    path = _module_path(root, modules)
    if path is None:
        return None
    return _search(root, top, path, name, budget=[_MAX_FILES], seen=set())


def _module_path(root: Path, parts: list[str]) -> Path | None:
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py") if parts else None, base / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def module_name(root: Path, top: str, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join([top, *parts])


@lru_cache(maxsize=64)
def parsed(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None


def _search(root: Path, top: str, path: Path, name: str, *, budget: list[int],
            seen: set[tuple[Path, str]]) -> tuple[Path, str, str] | None:
    if (path, name) in seen or budget[0] <= 0:
        return None
    seen.add((path, name))
    budget[0] -= 1
    tree = parsed(path)
    if tree is None:
        return None
    if any(isinstance(n, ast.ClassDef) and n.name == name for n in tree.body):
        return path, module_name(root, top, path), name
    named, starred = _imports(tree, path, root, top)
    if name in named:
        target, original = named[name]
        return _search(root, top, target, original, budget=budget, seen=seen)
    for target in starred:
        if "dummy" in target.name:  # transformers' placeholders for missing optional dependencies
            continue
        found = _search(root, top, target, name, budget=budget, seen=seen)
        if found is not None:
            return found
    return None


def _imports(tree: ast.Module, path: Path, root: Path, top: str) -> tuple[dict[str, tuple[Path, str]], list[Path]]:
    """The file's imports from its own package, anywhere in it (``if TYPE_CHECKING:`` blocks included)."""
    named: dict[str, tuple[Path, str]] = {}
    starred: list[Path] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        target = _resolve_from(node, path, root, top)
        if target is None:
            continue
        for alias in node.names:
            if alias.name == "*":
                starred.append(target)
            else:
                named.setdefault(alias.asname or alias.name, (target, alias.name))
    return named, starred


def imported_from(tree: ast.Module, module: str, name: str) -> str | None:
    """The dotted name of the class ``name`` as the file of ``module`` gets it: defined there, or imported
    (``from .base_config import _BaseConfig``, ``from transformers import TrainingArguments``)."""
    if any(isinstance(n, ast.ClassDef) and n.name == name for n in tree.body):
        return f"{module}.{name}"
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(a.name == name and not a.asname for a in node.names):
            if not node.level:
                return f"{node.module}.{name}" if node.module else None
            package = module.split(".")[:-node.level] if node.level <= module.count(".") else []
            return ".".join([*package, *([node.module] if node.module else []), name]) if package else None
    return None


def _resolve_from(node: ast.ImportFrom, path: Path, root: Path, top: str) -> Path | None:
    if node.level:
        folder = path.parent
        for _ in range(node.level - 1):
            folder = folder.parent
        parts = (node.module or "").split(".") if node.module else []
        found = _module_path(folder, parts) if parts else folder / "__init__.py"
    elif node.module and node.module.split(".")[0] == top:
        found = _module_path(root, node.module.split(".")[1:])
    else:
        return None
    return found if found is not None and found.is_file() else None


# -- reading any file's classes and imports (the user's and the libraries' alike) --


def bare_arguments(args: ast.arguments) -> ast.arguments:
    """The same parameters, with every default a constant None and no annotations: nothing to evaluate."""
    bare = copy.deepcopy(args)
    for arg in [*bare.posonlyargs, *bare.args, *bare.kwonlyargs, bare.vararg, bare.kwarg]:
        if arg is not None:
            arg.annotation = None
            arg.type_comment = None
    bare.defaults = [ast.Constant(None) for _ in bare.defaults]
    bare.kw_defaults = [None if d is None else ast.Constant(None) for d in bare.kw_defaults]
    return bare


def imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted origin, for the file's top-level absolute imports."""
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                    alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


def relative_imports(tree: ast.Module) -> dict[str, tuple[int, str, str]]:
    """Local name -> (level, module, name), for the file's top-level ``from .module import Name``."""
    return {alias.asname or alias.name: (node.level, node.module or "", alias.name)
            for node in tree.body if isinstance(node, ast.ImportFrom) and node.level
            for alias in node.names}


def module_file_under(module: str, roots: list[Path]) -> Path | None:
    relative = Path(*module.split("."))
    for root in roots:
        for candidate in (root / f"{relative}.py", root / relative / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None
