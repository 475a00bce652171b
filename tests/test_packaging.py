"""The release as a user meets it: the wheel and the sdist build and pass `twine check`, the wheel's metadata holds
every runtime dependency (accelerate included) and the single-sourced version, and an installed wheel runs
`trainer-compat --version` and the README's check example (exit 0 or 1, never 2).

Runs on the transformers 5 line only (one build is enough). It runs `scripts/check_dist.py --quick`: the fresh
venv gets the wheel with --no-deps and borrows this environment's dependencies (about a minute). The full fresh
install (`pip install torch==2.13.0 <wheel>`, every dependency resolved) is `python scripts/check_dist.py`, which
takes several minutes: run it before a release.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import trainer_compat

ROOT = Path(__file__).resolve().parent.parent


def _transformers_major() -> int:
    return int(importlib.metadata.version("transformers").split(".")[0])


def test_the_version_is_single_sourced():
    assert importlib.metadata.version("trainer-compat") == trainer_compat.__version__
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and "\nversion =" not in text.split("[tool.setuptools.dynamic]")[0]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog and f"## [{trainer_compat.__version__}]" in changelog


def test_runtime_requirements_are_complete():
    requires = importlib.metadata.requires("trainer-compat") or []
    runtime = {r.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip()
               for r in requires if "extra ==" not in r}
    assert {"torch", "transformers", "accelerate"} <= runtime, runtime
    assert "datasets" not in runtime
    test_extra = {r.split(";")[0].split(">")[0].strip() for r in requires if 'extra == "test"' in r}
    assert {"pytest", "peft", "datasets", "jsonschema"} <= test_extra, test_extra


def test_the_installed_accelerate_satisfies_the_installed_trainer():
    from packaging.version import Version

    needed = "1.1.0" if _transformers_major() >= 5 else "0.26.0"
    assert Version(importlib.metadata.version("accelerate")) >= Version(needed)
    declared = next(r for r in importlib.metadata.requires("trainer-compat") or [] if r.startswith("accelerate"))
    assert Version(declared.split(">=")[1].split(",")[0].split(";")[0].strip()) >= Version("1.1.0")  # 5.x's floor


@pytest.mark.skipif(_transformers_major() != 5, reason="the wheel is built and run once, on the transformers 5 line")
@pytest.mark.skipif(shutil.which("git") is None, reason="the build copies the tracked files (git ls-files)")
def test_wheel_and_sdist_build_check_install_and_run(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_dist.py"), "--quick", "--keep",
                           str(tmp_path / "dist-check")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("PASSED") == 2  # twine check: wheel and sdist
    assert "README check exit" in done.stdout and f"trainer-compat {trainer_compat.__version__}" in done.stdout


def test_every_optional_import_in_the_tests_skips_with_a_reason():
    """peft, trl, deepspeed and datasets are optional: a test module importing one at the top must guard it with
    pytest.importorskip(..., reason=...), and so must a test function importing one (or a helper it calls)."""
    optional = ("peft", "trl", "deepspeed", "datasets")
    unguarded = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            for name in optional:
                if stripped.startswith((f"import {name}", f"from {name} import", f"from {name}.")):
                    context = "\n".join(lines[max(0, number - 40):number])
                    if f'importorskip("{name}"' not in context and "importorskip(name" not in context:
                        unguarded.append(f"{path.name}:{number}: {stripped}")
    assert not unguarded, unguarded
