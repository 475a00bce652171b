"""Every access Trainer / Seq2SeqTrainer make to the model, found in their source by AST (never imported).

``accesses(source, file)`` lists the attribute reads, calls, stores and ``hasattr/getattr/setattr(model, "x")``
made on a model-like expression (``model``, ``self.model``, ``self.accelerator.unwrap_model(model)``, ...), each
with its enclosing function, line and a guard hint. ``protocol/accesses.json`` puts every accessed member in a
class; ``unclassified`` lists the accesses it does not cover. ``scripts/audit_protocol.py`` runs this over
every release and ``tests/test_protocol_audit.py`` over the installed one.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from packaging.version import Version

from trainer_compat.versions import ALWAYS, VersionRange

FILES = ("trainer.py", "trainer_seq2seq.py", "trainer_optimizer.py")  # the last from 5.10
ACCESSES = Path(__file__).resolve().parent / "accesses.json"
CLASSES = ("requirement", "nn.Module", "guarded-optional", "PreTrainedModel-only", "framework", "not-a-model")
CALL = "__call__"  # model(...) itself: nn.Module.__call__ -> forward

# Names that hold the model (or a wrapper of it) in trainer.py / trainer_seq2seq.py of 4.46.0 .. 5.24.0.
MODEL_NAMES = frozenset({"model", "unwrapped_model", "model_to_inspect", "opt_model", "jit_model",
                         "wrapped_model", "base_model", "inner_model"})
SELF_ATTRS = frozenset({"model", "model_wrapped", "deepspeed"})  # self.deepspeed = self.model_wrapped
UNWRAP_CALLS = frozenset({"unwrap_model", "unwrap_peft_model", "extract_model_from_parallel"})
DERIVED_ATTRS = frozenset({"base_model", "module", "model", "_orig_mod"})  # PEFT base, DDP/compile inner
DERIVED_CALLS = frozenset({"get_base_model"})
_OWNER = re.compile(r"\b(?:self|trainer)\.model(?:_wrapped)?\b")  # Trainer's own attribute, not a member
_PROBES = frozenset({"hasattr", "getattr", "setattr", "delattr"})
_ISINSTANCE = re.compile(r"isinstance\(|is_peft_model|PeftModel|PreTrainedModel|supported_classes")
_FRAMEWORK = re.compile(r"deepspeed|fsdp|xla|tpu|sagemaker|smp|ParallelMode|tp_size|model_parallel|"
                        r"is_distributed_loading|DataParallel|n_gpu|ipex|jit|torch_compile|FSDPModule")


@dataclass(frozen=True)
class Access:
    file: str
    line: int
    function: str
    receiver: str
    member: str
    kind: str  # read | call | store | delete | hasattr | getattr | setattr | delattr
    guard: str  # hasattr | getattr-default | isinstance | framework | try | conditional | unguarded
    condition: str = ""

    def where(self) -> str:
        return f"{self.file}:{self.line} {self.member} ({self.kind}) in {self.function}"


@dataclass(frozen=True)
class Entry:
    member: str
    cls: str
    reason: str
    versions: VersionRange = ALWAYS
    receivers: tuple[str, ...] = ()  # empty: any receiver

    def covers(self, access: Access, version: Version | str) -> bool:
        return version in self.versions and (not self.receivers or access.receiver in self.receivers)


def is_model(node: ast.AST) -> bool:
    """Whether ``node`` evaluates to the model, a wrapper of it, or the model a wrapper holds."""
    if isinstance(node, ast.Name):
        return node.id in MODEL_NAMES
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "self":
            return node.attr in SELF_ATTRS
        return node.attr in DERIVED_ATTRS and is_model(node.value)
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in UNWRAP_CALLS:
            return bool(node.args) and is_model(node.args[0])
        return name in DERIVED_CALLS and isinstance(func, ast.Attribute) and is_model(func.value)
    return False


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}


def _function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    names = []
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
    return ".".join(reversed(names)) or "<module>"


def _branch(parent: ast.AST, child: ast.AST) -> list[tuple[ast.expr, bool]]:
    """The tests ``parent`` puts on ``child``: (test, True) when it runs if the test holds, False if it fails."""
    if isinstance(parent, (ast.If, ast.IfExp, ast.While)) and child is not parent.test:
        body = parent.body if isinstance(parent.body, list) else [parent.body]
        return [(parent.test, child in body)]
    if isinstance(parent, ast.BoolOp) and isinstance(child, ast.expr):
        before = parent.values[: parent.values.index(child)]
        return [(v, isinstance(parent.op, ast.And)) for v in before]
    if isinstance(parent, ast.comprehension) and child is not parent.iter:
        return [(test, True) for test in parent.ifs]
    return []


def _conditions(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> tuple[list[tuple[ast.expr, bool]], bool]:
    """The tests that decide whether ``node`` runs (innermost first), and whether a ``try`` encloses it."""
    tests: list[tuple[ast.expr, bool]] = []
    in_try = False
    child = node
    while child in parents:
        parent = parents[child]
        tests.extend(_branch(parent, child))
        in_try = in_try or (isinstance(parent, ast.Try) and child in parent.body)
        child = parent
    return tests, in_try


def _probes(test: ast.expr, member: str) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in _PROBES
               and len(n.args) > 1 and isinstance(n.args[1], ast.Constant) and n.args[1].value == member
               for n in ast.walk(test))


def guard_hint(node: ast.AST, member: str, parents: dict[ast.AST, ast.AST]) -> tuple[str, str]:
    """A hint of what guards the access, and the innermost condition's text."""
    tests, in_try = _conditions(node, parents)
    texts = [(ast.unparse(t), positive) for t, positive in tests]
    condition = ""
    if texts:
        condition = texts[0][0] if texts[0][1] else f"not ({texts[0][0]})"
    if any(_probes(t, member) for t, _ in tests):
        return "hasattr", condition[:100]
    for tag, regex in (("isinstance", _ISINSTANCE), ("framework", _FRAMEWORK)):
        if any(positive and regex.search(text) for text, positive in texts):
            return tag, condition[:100]
    if in_try:
        return "try", condition[:100]
    return ("conditional" if tests else "unguarded"), condition[:100]


def _kind(node: ast.Attribute, parents: dict[ast.AST, ast.AST]) -> str:
    parent = parents.get(node)
    if isinstance(parent, ast.Call) and parent.func is node:
        return "call"
    return {ast.Store: "store", ast.Del: "delete"}.get(type(node.ctx), "read")


def _access(node: ast.AST, parents: dict[ast.AST, ast.AST], file: str) -> Access | None:
    if isinstance(node, ast.Attribute) and is_model(node.value):
        receiver, member, kind = node.value, node.attr, _kind(node, parents)
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _PROBES
          and len(node.args) > 1 and is_model(node.args[0])):
        receiver, kind = node.args[0], node.func.id
        arg = node.args[1]
        member = str(arg.value) if isinstance(arg, ast.Constant) else f"<{ast.unparse(arg)}>"
    elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)) and is_model(node.func) \
            and not (isinstance(node.func, ast.Attribute) and is_model(node.func.value)):
        receiver, member, kind = node.func, CALL, "call"
    else:
        return None
    guard, condition = guard_hint(node, member, parents)
    if kind in ("hasattr", "delattr") or (kind == "getattr" and isinstance(node, ast.Call) and len(node.args) > 2):
        guard = "hasattr" if kind != "getattr" else "getattr-default"
    return Access(file, node.lineno, _function(node, parents), ast.unparse(receiver), str(member), kind, guard,
                  condition)


def accesses(source: str, file: str) -> list[Access]:
    """Every access to the model in ``source`` (the text of ``file``), in line order."""
    tree = ast.parse(source)
    parents = _parents(tree)
    found = (_access(node, parents, file) for node in ast.walk(tree))
    return sorted((a for a in found if a is not None), key=lambda a: (a.line, a.member, a.kind))


def release_accesses(root: Path) -> list[Access]:
    """The accesses in the Trainer and Seq2SeqTrainer sources of one release (a directory)."""
    found: list[Access] = []
    for name in FILES:
        path = root / name
        if path.is_file():
            found.extend(accesses(path.read_text(encoding="utf-8"), name))
    return found


def _entries(member: str, raw: dict[str, Any] | list[dict[str, Any]]) -> list[Entry]:
    items = raw if isinstance(raw, list) else [raw]
    return [Entry(member, item["class"], item["reason"], VersionRange(item.get("since"), item.get("until")),
                  tuple(item.get("receivers", ())))
            for item in items]


def load_classification(path: Path = ACCESSES) -> dict[str, list[Entry]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {member: _entries(member, raw) for member, raw in data["members"].items()}


@lru_cache(maxsize=1)
def classification() -> dict[str, list[Entry]]:
    return load_classification()


def classify(access: Access, version: Version | str, table: dict[str, list[Entry]] | None = None) -> Entry | None:
    """The class of ``access`` in ``version`` (the first entry of its member that covers it), or None."""
    entries = (classification() if table is None else table).get(access.member, [])
    return next((e for e in entries if e.covers(access, version)), None)


def unclassified(found: list[Access], version: Version | str,
                 table: dict[str, list[Entry]] | None = None) -> list[Access]:
    return [a for a in found if classify(a, version, table) is None]


def invalid_entries(table: dict[str, list[Entry]], covered: set[str]) -> list[str]:
    """Classification entries that are malformed, or say ``requirement`` for a member the data does not cover."""
    problems = []
    for member, entries in sorted(table.items()):
        for entry in entries:
            if entry.cls not in CLASSES:
                problems.append(f"accesses.json: {member}: unknown class {entry.cls!r}")
            elif not entry.reason.strip():
                problems.append(f"accesses.json: {member}: no reason")
            elif entry.cls == "requirement" and member not in covered:
                problems.append(f"accesses.json: {member} is classed requirement, but no REQUIREMENTS entry "
                                f"or rule Site covers it")
    return problems


def covered_members(members: set[str], patterns: list[str]) -> set[str]:
    """Members that a REQUIREMENTS entry names, or that a Site pattern mentions; model(...) is ``forward``."""
    words: set[str] = set()
    for pattern in patterns:
        text = _OWNER.sub("", pattern.replace("\\", ""))
        words.update(a or b for a, b in re.findall(r"\.([A-Za-z_]\w*)|\"([A-Za-z_]\w*)\"", text))
    covered = set(members) | words
    if "forward" in covered:
        covered.add(CALL)
    return covered


def site_on_line(access: Access, line: str, patterns: list[str]) -> bool:
    """Whether a REQUIREMENTS or rule Site pattern matches the source line of a ``requirement`` access."""
    return any(re.search(p, line) for p in patterns)
