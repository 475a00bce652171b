"""Every rule's examples are its tests: each `fires` example triggers the rule, each `silent` one does not."""

from __future__ import annotations

import pytest

import trainer_compat
from trainer_compat.rules import ALL_RULES, MODEL_RULES, Example, Rule
from trainer_compat.versions import installed_transformers


def _cases(kind: str) -> list:
    return [pytest.param(rule, example, id=f"{rule.code}-{kind}-{i}")
            for rule in MODEL_RULES for i, example in enumerate(getattr(rule, kind))]


def _codes(example: Example, tmp_path) -> set[str]:
    return {f.rule for f in _findings(example, tmp_path)}


def _findings(example: Example, tmp_path) -> list:
    if installed_transformers() not in example.versions:
        pytest.skip(f"example holds for transformers {example.versions}")
    if example.peft is not None or "import peft" in example.code or "from peft" in example.code:
        pytest.importorskip("peft", reason="a PEFT example needs peft")  # TC1004/TC1006 build a PeftModel themselves
    if example.trainer in ("sft", "dpo", "reward", "grpo"):
        pytest.importorskip("trl", reason="a TRL trainer example needs trl")
        from trainer_compat.trainer_class import TRL_KINDS

        if not hasattr(__import__("trl"), TRL_KINDS[example.trainer][1]):
            pytest.skip(f"this TRL has no {TRL_KINDS[example.trainer][1]}")
    model = example.load(tmp_path)
    return trainer_compat.check(model, **example.options(tmp_path)).findings


@pytest.mark.parametrize(("rule", "example"), _cases("fires"))
def test_fires(rule: type[Rule], example: Example, tmp_path) -> None:
    if example.expect is None:
        assert rule.code in _codes(example, tmp_path)
        return
    own = [f for f in _findings(example, tmp_path) if f.rule == rule.code]
    assert own, f"{rule.code} did not fire"
    assert any(not example.expect.problems(f) for f in own), [example.expect.problems(f) for f in own]


def test_an_expectation_tells_what_a_finding_lacks() -> None:
    from trainer_compat.findings import Finding, Severity
    from trainer_compat.rules import Expect

    finding = Finding(rule="TC001", name="missing-member", severity=Severity.WARNING, message="x has no y",
                      member="y")
    assert not Expect(Severity.WARNING, "y", "has no").problems(finding)
    assert len(Expect(Severity.ERROR, "z", "absent").problems(finding)) == 3


@pytest.mark.parametrize(("rule", "example"), _cases("silent"))
def test_silent(rule: type[Rule], example: Example, tmp_path) -> None:
    assert rule.code not in _codes(example, tmp_path)


@pytest.mark.parametrize("rule", MODEL_RULES, ids=lambda r: r.code)
def test_every_rule_is_documented_with_both_kinds_of_example(rule: type[Rule]) -> None:
    assert rule.code and rule.name and rule.summary and rule.explanation
    assert rule.fires and rule.silent
    if installed_transformers() in rule.versions:  # a hazard fixed upstream has no case on later releases
        assert any(installed_transformers() in e.versions for e in rule.fires)


def test_codes_and_names_are_unique() -> None:
    assert len({r.code for r in ALL_RULES}) == len(ALL_RULES)
    assert len({r.name for r in ALL_RULES}) == len(ALL_RULES)
