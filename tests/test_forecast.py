"""--transformers-version: the verdict for a release that is not installed equals what that release really does.

The expectations in tests/fixtures/forecast/<version>.json were recorded by scripts/record_forecast_fixture.py,
running the real Trainer of that release (the tf446 venv for 4.46.3).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import trainer_compat
from tests.test_agreement import PROFILES
from tests.zoo import ZOO
from trainer_compat.cli import main
from trainer_compat.forecast import forecast_site
from trainer_compat.protocol.data import REQUIREMENTS
from trainer_compat.protocol.sites import resolve_installed
from trainer_compat.versions import installed_transformers

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "forecast").glob("*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _cases() -> list:
    return [pytest.param(data["transformers"], case, id=f"{data['transformers']}-{case['model']}-{case['profile']}")
            for data in map(_load, FIXTURES) for case in data["cases"]]


def _check(case: dict, version: str | None):
    entry = next(e for e in ZOO if e.name == case["model"])
    profile = next(p for p in PROFILES if p.name == case["profile"])
    return trainer_compat.check(entry.build(), args=profile.fields(), trainer=entry.trainer,
                                transformers_version=version)


@pytest.mark.parametrize(("version", "case"), _cases())
def test_forecast_equals_what_that_release_did(version: str, case: dict) -> None:
    report = _check(case, version)
    assert report.transformers_version == version
    assert report.compatible == case["trainer_ok"], f"{version} really: {case['outcome']}"
    assert sorted({f.rule for f in report.findings if f.severity.value == "error"}) == case["errors"]


def test_the_fixtures_tell_releases_apart() -> None:
    """A forecast that ignored the version would fail the cases above: the installed verdict differs somewhere."""
    data = _load(FIXTURES[0])
    if str(installed_transformers()) == data["transformers"]:
        pytest.skip("the fixture's own release is installed")
    assert any(_check(case, None).compatible != case["trainer_ok"] for case in data["cases"])


def test_recorded_lines_are_the_installed_source_lines() -> None:
    version = installed_transformers()
    compared = 0
    for req in REQUIREMENTS:
        if version not in req.versions:
            continue
        installed = resolve_installed(req.site)
        recorded = forecast_site(req.site.pattern, req.site.modules, version)
        if "line unknown" in recorded.file:  # a module the recorded sources lack (modelcard.py)
            continue
        assert (recorded.file, recorded.line) == (installed.file, installed.line), req.site.pattern
        compared += 1
    assert compared >= 3, f"protocol/lines.json knows too few sites of transformers {version}"


def test_cli_forecast_names_the_version_and_its_lines(capsys) -> None:
    code = main(["check", "tests/zoo.py:ExplicitWrapper", "--no-isolate", "--transformers-version", "4.46.3",
                 "--args", '{"gradient_checkpointing": true}', "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert report["transformers"] == "4.46.3"  # the header says which release the verdicts are for
    assert report["results"][0]["transformers"] == "4.46.3"
    text = json.dumps(report)
    assert code == 1 and "4.46.3" in text
    assert "transformers/trainer.py:2253" in text or '"line": 2253' in text  # 4.46.3's line, not the installed one


def test_cli_rejects_versions_without_data(capsys) -> None:
    assert main(["check", "tests/zoo.py:ExplicitWrapper", "--transformers-version", "4.30.0"]) == 2
    assert "older than 4.46.0" in capsys.readouterr().err
