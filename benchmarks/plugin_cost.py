"""The pytest plugin's cost on an unrelated one-test suite, as a ratio to the same run without it.

    python benchmarks/plugin_cost.py [--repeat 7]

The plugin loads (entry point ``pytest11``) in every pytest run of the environment where trainer-compat is
installed. Both sides run ``python -m pytest -q -p no:cacheprovider`` on the same throw-away suite of one test, in
fresh interpreters, alternately, in this one run: with the plugin, and with ``-p no:trainer_compat``. Each figure
is the median wall time of --repeat runs (interpreter start included). Target: ratio <= 1.2.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = "def test_unrelated():\n    assert 1 + 1 == 2\n"


def run(suite: Path, *extra: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra],
                          cwd=suite, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or "1 passed" not in done.stdout:
        raise SystemExit(f"the one-test suite did not pass:\n{done.stdout}{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp)
        (suite / "test_unrelated.py").write_text(SUITE)
        run(suite)  # warm the file cache (and write no bytecode into the repository)
        with_plugin, without = [], []
        for _ in range(options.repeat):
            with_plugin.append(run(suite))
            without.append(run(suite, "-p", "no:trainer_compat"))
    a, b = statistics.median(with_plugin), statistics.median(without)
    print(f"unrelated 1-test suite, median of {options.repeat}: with the plugin {a:.3f} s, "
          f"-p no:trainer_compat {b:.3f} s, ratio {a / b:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
