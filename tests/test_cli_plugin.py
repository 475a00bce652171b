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
    assert "PASSED pyproject.toml::trainer-compat[models.py:Good]" in text
    assert "FAILED pyproject.toml::trainer-compat[models.py:Tied]" in text
    assert "models.py:Tied: NOT compatible with transformers" in text  # the report is the failure text
    assert "TC301 unsafe-state-dict" in text and "Traceback" not in text
    plain = pytester.runpytest_subprocess("-p", "no:cacheprovider")  # without the flag: only the tests
    plain.assert_outcomes(passed=2)


def _copy_project(pytester) -> None:
    for item in PROJECT.iterdir():
        if item.is_file():
            shutil.copy(item, pytester.path / item.name)


def test_collect_only_counts_the_target_items(pytester):
    _copy_project(pytester)
    result = pytester.runpytest_subprocess("--trainer-compat", "-p", "no:cacheprovider", "--co")
    text = result.stdout.str()
    assert "collected 4 items" in text, text  # 2 tests + 2 targets, as listed
    assert "<TargetItem trainer-compat[models.py:Good]>" in text
    assert "<TargetItem trainer-compat[models.py:Tied]>" in text
    # a test file named on the command line: the targets come through pytest's collection all the same
    named = pytester.runpytest_subprocess("--trainer-compat", "-p", "no:cacheprovider", "--co", "-q",
                                          "check_models.py")
    assert named.stdout.lines[-1].startswith("4 tests collected"), named.stdout.str()


def test_a_target_node_id_is_selectable(pytester):
    _copy_project(pytester)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA",
                                           "pyproject.toml::trainer-compat[models.py:Good]")
    result.assert_outcomes(passed=1)
    assert "PASSED pyproject.toml::trainer-compat[models.py:Good]" in result.stdout.str()
    deselected = pytester.runpytest_subprocess("--trainer-compat", "-p", "no:cacheprovider", "--co", "-q",
                                               "-k", "Tied and trainer")
    assert deselected.stdout.lines[0] == "pyproject.toml::trainer-compat[models.py:Tied]", deselected.stdout.str()
