"""Locations are the project's: relative to the directory of the config file, whatever folder the check runs
from (issue #12), so a pull request can attach them; a library's call site stays as it is."""

from __future__ import annotations

import json

from trainer_compat.cli import main
from trainer_compat.example_models import KWARGS_WRAPPER
from trainer_compat.findings import Location


def test_a_check_run_from_a_subfolder_reports_project_relative_locations(tmp_path, monkeypatch, capsys):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "wrapper.py").write_text(KWARGS_WRAPPER, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text('[tool.trainer-compat]\ntargets = ["pkg/wrapper.py:Model"]\n'
                                             'args = { gradient_checkpointing = true }\n', encoding="utf-8")
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path / "docs")
    code = main(["check", "--no-isolate", "--format", "json", "--config", str(tmp_path / "pyproject.toml")])
    document = json.loads(capsys.readouterr().out)
    assert code == 1
    result = document["results"][0]
    assert result["location"]["file"] == "pkg/wrapper.py"
    files = {f["location"]["file"] for f in result["findings"] if f["location"]}
    assert files == {"pkg/wrapper.py"}, files
    sites = {f["call_site"]["file"] for f in result["findings"] if f["call_site"]}
    assert all(s.startswith("transformers/") for s in sites), sites  # the library's paths are left alone


def test_a_location_outside_the_root_or_in_a_library_stays_as_it_was(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "a.py").write_text("", encoding="utf-8")
    (tmp_path / "elsewhere.py").write_text("", encoding="utf-8")
    root = tmp_path / "root"
    assert Location("root/a.py", 3).under(root, tmp_path) == Location("a.py", 3)
    assert Location(str(tmp_path / "elsewhere.py"), 1).under(root, tmp_path).file == str(tmp_path / "elsewhere.py")
    assert Location("transformers/trainer.py", 9).under(root, tmp_path) == Location("transformers/trainer.py", 9)
