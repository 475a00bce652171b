"""Path targets inside a package resolve their package root as pytest's rootdir/importlib modes do, whatever targets
came before in the same run (issue #12: `check myproj/lora.py:lora_llama` failed unless an earlier module target
had put the cwd on sys.path)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

LOAD = textwrap.dedent("""
    import json, sys
    from trainer_compat.errors import TargetError
    from trainer_compat.targets import load_target
    out = []
    for spec in sys.argv[1:]:
        try:
            obj = load_target(spec)
            out.append([spec, obj() if callable(obj) else obj, getattr(obj, "__module__", None)])
        except TargetError as exc:
            out.append([spec, "error", str(exc)])
    print(json.dumps(out))
""")


def _project(root: Path) -> Path:
    pkg = root / "myproj"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "x.py").write_text("Y = 'y from myproj.x'\n")
    (pkg / "lora.py").write_text("from myproj.x import Y\n\n\ndef lora_llama():\n    return 'lora ' + Y\n")
    (pkg / "sub" / "rel.py").write_text("from ..x import Y\n\n\ndef relative():\n    return 'rel ' + Y\n")
    (root / "plain.py").write_text("def plain():\n    return 'plain'\n")
    return root


def _load(cwd: Path, *specs: str) -> list[list[str]]:
    # a fresh interpreter per order, started where sys.path does not hold the project (python -c puts '' first:
    # run from elsewhere, with the project given by absolute path, would hide nothing; so take '' out)
    code = "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n" + LOAD
    done = subprocess.run([sys.executable, "-c", code, *specs], capture_output=True, text=True, cwd=cwd,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("order", [
    ("myproj/lora.py:lora_llama",),
    ("plain.py:plain", "myproj/lora.py:lora_llama"),
    ("myproj.x:Y", "myproj/lora.py:lora_llama"),
    ("myproj/lora.py:lora_llama", "myproj.x:Y"),
    ("myproj/sub/rel.py:relative", "myproj/lora.py:lora_llama"),
])
def test_a_package_file_loads_in_any_order(tmp_path, order):
    _project(tmp_path)
    results = {spec: (value, where) for spec, value, where in _load(tmp_path, *order)}
    assert results["myproj/lora.py:lora_llama"] == ("lora y from myproj.x", "myproj.lora")
    if "myproj/sub/rel.py:relative" in results:
        assert results["myproj/sub/rel.py:relative"] == ("rel y from myproj.x", "myproj.sub.rel")


def test_a_src_layout_and_an_absolute_path(tmp_path):
    _project(tmp_path / "src")
    (tmp_path / "elsewhere").mkdir()
    absolute = f"{tmp_path / 'src' / 'myproj' / 'lora.py'}:lora_llama"
    [[_, value, where]] = _load(tmp_path / "elsewhere", absolute)
    assert (value, where) == ("lora y from myproj.x", "myproj.lora")
    [[_, value, where]] = _load(tmp_path, "src/myproj/lora.py:lora_llama")
    assert (value, where) == ("lora y from myproj.x", "myproj.lora")


def test_a_file_outside_packages_still_sees_its_siblings(tmp_path):
    (tmp_path / "helper.py").write_text("H = 'h'\n")
    (tmp_path / "model.py").write_text("from helper import H\n\n\ndef build():\n    return 'model ' + H\n")
    (tmp_path / "run").mkdir()
    [[_, value, _]] = _load(tmp_path / "run", f"{tmp_path / 'model.py'}:build")
    assert value == "model h"


def test_an_import_error_inside_the_package_is_a_target_error(tmp_path):
    _project(tmp_path)
    (tmp_path / "myproj" / "broken.py").write_text("from myproj.nowhere import Z\n")
    [[_, value, message]] = _load(tmp_path, "myproj/broken.py:Z")
    assert value == "error" and "no module named 'myproj.nowhere'" in message
