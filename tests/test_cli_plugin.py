"""The pytest plugin, as a user's project meets it: `pytest --trainer-compat` in tests/plugin_project."""

from __future__ import annotations

import shutil
from importlib.metadata import entry_points
from pathlib import Path

PROJECT = Path(__file__).resolve().parent / "plugin_project"
pytest_plugins = ["pytester"]


def test_the_plugin_is_registered_as_a_pytest11_entry_point():
    names = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert names.get("trainer_compat") == "trainer_compat.pytest_plugin"


def test_plugin_project_passes_and_fails(pytester):
    for item in PROJECT.iterdir():
        if item.is_file():
            shutil.copy(item, pytester.path / item.name)
    result = pytester.runpytest_subprocess("--trainer-compat", "-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=3, failed=1)
    text = result.stdout.str()
    assert "PASSED ::trainer-compat[models.py:Good]" in text
    assert "FAILED ::trainer-compat[models.py:Tied]" in text
    assert "models.py:Tied: NOT compatible with transformers" in text  # the report is the failure text
    assert "TC301 unsafe-state-dict" in text and "Traceback" not in text
    plain = pytester.runpytest_subprocess("-p", "no:cacheprovider")  # without the flag: only the tests
    plain.assert_outcomes(passed=2)
