"""``trainer-compat rule CODE``: a rule's documentation, generated from the rule itself.

Its explanation and examples come from the class; its call sites, messages and fixes come from running
its ``fires`` examples against the installed transformers (probe examples are listed, not run).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from trainer_compat.rules import Example, Rule


def _observed(rule: type[Rule], example: Example, directory: Path) -> dict[str, Any]:
    from trainer_compat.api import check
    from trainer_compat.versions import installed_transformers

    version = installed_transformers()
    if version not in example.versions:
        return {"ran": False, "why": f"holds for transformers {example.versions}, {version} is installed"}
    if example.probe:
        return {"ran": False, "why": "a probe example: check it with --probe"}
    report = check(example.load(directory), **{**example.options(directory), "probe": False})
    return {"ran": True, "transformers": str(version),
            "findings": [{"severity": f.severity.value, "message": f.message, "fix": f.fix,
                          "call_site": str(f.call_site) if f.call_site else None}
                         for f in report.findings if f.rule == rule.code]}


def _example(example: Example) -> dict[str, Any]:
    return {"code": example.code.strip("\n"), "args": example.args, "trainer": example.trainer,
            "transformers": str(example.versions), "probe": example.probe, "peft": example.peft,
            "data": example.data.strip("\n") if example.data else None,
            "trainer_code": example.trainer_code.strip("\n") if example.trainer_code else None}


def rule_document(rule: type[Rule], run_examples: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {"code": rule.code, "name": rule.name, "severity": rule.severity.value,
                           "summary": rule.summary, "explanation": rule.explanation,
                           "produced_by": getattr(rule, "produced_by", "check"),
                           "fires": [_example(e) for e in rule.fires], "silent": [_example(e) for e in rule.silent]}
    if run_examples and rule.fires:
        from trainer_compat.render.progress import Progress

        progress = Progress(len(rule.fires))  # on stderr, on a terminal only: examples take seconds
        with tempfile.TemporaryDirectory(prefix="trainer-compat-rule-") as tmp:
            for i, (entry, example) in enumerate(zip(doc["fires"], rule.fires, strict=True)):
                progress.start(i, f"{rule.code}: running example #{i + 1}")
                entry["observed"] = _observed(rule, example, Path(tmp))
                progress.done(i, f"{len(entry['observed'].get('findings', []))} findings" if entry["observed"]["ran"]
                              else "not run")
    return doc


def render_rule_json(docs: list[dict[str, Any]]) -> str:
    return json.dumps(docs if len(docs) != 1 else docs[0], indent=2)


def _indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line if line else line for line in text.splitlines())


def render_rule_text(doc: dict[str, Any]) -> str:
    lines = [f"{doc['code']} {doc['name']} ({doc['severity']})", "", doc["summary"], "", doc["explanation"], ""]
    if doc["produced_by"] != "check":
        lines += [f"Reported by: {doc['produced_by']}.", ""]
    for kind, title in (("fires", "Fires"), ("silent", "Stays silent")):
        for i, example in enumerate(doc[kind], 1):
            meta = [f"trainer={example['trainer']}", f"transformers {example['transformers']}"]
            if example["args"]:
                meta.append(f"args={json.dumps(example['args'])}")
            if example.get("peft"):
                meta.append(f"peft={json.dumps(example['peft'])}")
            lines += [f"{title} #{i} ({', '.join(meta)}):", _indent(example["code"]), ""]
            lines += _observed_lines(example.get("observed"))
    return "\n".join(lines).rstrip("\n")


def _observed_lines(observed: dict[str, Any] | None) -> list[str]:
    if not observed:
        return []
    if not observed["ran"]:
        return [f"  (not run: {observed['why']})", ""]
    lines = [f"  On the installed transformers {observed['transformers']}:"]
    for f in observed["findings"]:
        lines.append(f"    {f['severity']}: {f['message']}")
        if f["call_site"]:
            lines.append(f"    call site: {f['call_site']}")
        if f["fix"]:
            lines.append(f"    fix: {f['fix']}")
    return [*lines, ""]
