"""The checker's pipeline: a rule runs only on the releases it declares, and a rule that crashes is a finding
that names it while the other rules still run."""

from __future__ import annotations

from torch import nn

from trainer_compat import check
from trainer_compat.rules import ALL_RULES
from trainer_compat.versions import VersionRange


class Wrapper(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, **kwargs):
        return {"loss": self.proj(kwargs["x"]).sum()}


def _rule(code):
    return next(r for r in ALL_RULES if r.code == code)


def test_a_crashing_rule_is_a_finding_that_names_it_and_the_others_still_run(monkeypatch):
    rule = _rule("TC101")

    def crash(self, ctx):
        raise RuntimeError("boom")
        yield  # pragma: no cover

    monkeypatch.setattr(rule, "check", crash)
    report = check(Wrapper, {"gradient_checkpointing": True})
    crashed = [f for f in report.findings if f.rule == "TC101"]
    assert len(crashed) == 1 and "could not check Wrapper" in crashed[0].message and "boom" in crashed[0].message
    assert crashed[0].severity.value == "warning" and "test_pipeline.py" in crashed[0].message
    assert any(f.rule == "TC001" for f in report.findings)  # the next rules ran


def test_a_rule_runs_only_on_the_releases_it_declares(monkeypatch):
    rule = _rule("TC001")
    assert any(f.rule == "TC001" for f in check(Wrapper, {"gradient_checkpointing": True}).findings)
    monkeypatch.setattr(rule, "versions", VersionRange(until="4.0.0"))
    assert not any(f.rule == "TC001" for f in check(Wrapper, {"gradient_checkpointing": True}).findings)


def test_a_rule_with_malformed_metadata_is_refused_when_its_class_is_created():
    import pytest

    from trainer_compat.findings import Severity
    from trainer_compat.rules import Rule

    with pytest.raises(TypeError, match=r"code 'X1' is not TC.*summary is empty"):
        class Bad(Rule):
            code = "X1"
            name = "bad"
            severity = Severity.ERROR
            summary = ""
            explanation = "x"

    class Good(Rule):  # the same with valid metadata: no error
        code = "TC9999"
        name = "good-rule"
        severity = Severity.INFO
        summary = "s"
        explanation = "e"


def test_one_registry_holds_every_rule_and_the_checker_runs_the_model_rules():
    from trainer_compat.catalog import all_rules
    from trainer_compat.rules import MODEL_RULES

    codes = [r.code for r in all_rules()]
    assert {"TC001", "TC701", "TC801", "TC901"} <= set(codes) and len(codes) == len(set(codes))
    assert "TC801" not in {r.code for r in MODEL_RULES} and "TC001" in {r.code for r in MODEL_RULES}
