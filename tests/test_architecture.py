"""The shape of the package (issue #13): imports without cycles, rules as leaves, no run settings in the
process's environment or in context variables. Every import counts, function-local ones too; imports under
``if TYPE_CHECKING:`` never run and do not."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "trainer_compat"
# Modules that write os.environ, each for a reason that is not a run setting travelling through it.
ENVIRONMENT_WRITERS = {
    "isolate_child.py": "the child-process launcher: pops the private channel's descriptor",
    "guard.py": "puts back what target code changed; breakpoint() off while targets run; transformers' verbosity",
    "probe/process.py": "puts back what the real Trainer set (full_determinism's variables)",
    "features.py": "puts back what TrainingArguments exported (4.x FSDP settings)",
}
_WRITE = re.compile(r"os\.environ(\[[^\]]+\]\s*=(?!=)|\.(update|pop|setdefault|clear|popitem)\()|del os\.environ|"
                    r"os\.(putenv|unsetenv)\(")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                lines.update(range(sub.lineno, (sub.end_lineno or sub.lineno) + 1))
    return lines


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.lineno in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
            continue
        base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
        module = ".".join([*base, node.module] if node.module else base) if node.level else node.module or ""
        for alias in node.names:
            out.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module)
    return {m for m in out if m in modules and m not in (name, "trainer_compat")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*trail[trail.index(nxt):], nxt] if nxt in trail else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*trail, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_import_graph_is_read():
    graph = _graph()
    assert "trainer_compat.checker" in graph["trainer_compat.api"]  # a module-level import
    assert "trainer_compat.trainer_check" in graph["trainer_compat.api"]  # a function-local one


def test_no_import_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_the_cycle_search_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_rule_module_imports_another():
    shared = {"trainer_compat.rules", "trainer_compat.rules.base"}
    edges = [(a, b) for a, targets in _graph().items() for b in targets
             if a.startswith("trainer_compat.rules.") and b.startswith("trainer_compat.rules.") and b not in shared]
    assert not edges, edges


def test_the_library_never_imports_the_command_line():
    edges = [(a, b) for a, targets in _graph().items() for b in targets
             if b.startswith("trainer_compat.cli") and not a.startswith("trainer_compat.cli")
             and a != "trainer_compat.__main__"]
    assert not edges, edges


def test_no_run_setting_travels_through_the_environment_or_a_context_variable():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        text = path.read_text(encoding="utf-8")
        if "ContextVar" in text or "contextvars" in text:
            offenders.append(f"{relative}: ContextVar")
        if _WRITE.search(text) and relative not in ENVIRONMENT_WRITERS:
            offenders.append(f"{relative}: writes os.environ")
    assert not offenders, offenders


def test_the_environment_pattern_sees_writes_and_not_reads():
    assert _WRITE.search('os.environ["X"] = "1"') and _WRITE.search("os.environ.pop('X', None)")
    assert not _WRITE.search('os.environ.get("X")') and not _WRITE.search('os.environ["X"] == "1"')


def test_every_call_site_is_a_module_level_constant_where_the_line_recorder_finds_it():
    """scripts/record_site_lines.py records the sites of protocol/data.py and the module-level Site constants of
    the rule modules; a Site built inside a function would get no recorded line for a forecast."""
    misplaced = [f"rules/{path.name}:{line}" for path in (PACKAGE / "rules").glob("*.py")
                 for line in _misplaced_sites(ast.parse(path.read_text(encoding="utf-8")))]
    assert not misplaced, misplaced
    assert _misplaced_sites(ast.parse("_A = Site('x')\ndef f():\n    return Site('y')\n")) == [3]


def _misplaced_sites(tree: ast.Module) -> list[int]:
    top_level = {id(node.value) for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))}
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Site" and id(node) not in top_level]
