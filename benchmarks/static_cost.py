"""What ``check --static`` costs against importing torch alone, measured in one run as a ratio.

    python benchmarks/static_cost.py [--repeat 7]

The pre-commit hook runs ``trainer-compat check --static``; it should feel like ruff, so it must not pay for
torch. Both sides run in fresh interpreters, alternately, in this one run: ``python -c "import torch"`` (the
floor of any check that imports the model) and ``python -m trainer_compat check --static`` on the seed example
with checkpointing on. Each figure is the median wall time of --repeat runs (interpreter start included), and
the static run's import list is checked for torch and transformers. Target: ratio <= 0.3.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.3
STATIC = [sys.executable, "-m", "trainer_compat", "check", "--static",
          "examples/higgs_audio_wrapper.py:HiggsAudioModelWrapper", "--args", '{"gradient_checkpointing": true}']
TORCH = [sys.executable, "-c", "import torch"]


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")
    return elapsed


def heavy_imports() -> list[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", *STATIC[1:]], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    names = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return sorted(names & {"torch", "transformers", "accelerate", "peft"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    runs: dict[str, list[float]] = {"static": [], "import_torch": []}
    for _ in range(options.repeat):  # interleaved, so drift hits both alike
        runs["import_torch"].append(wall(TORCH))
        runs["static"].append(wall(STATIC))
    median = {k: statistics.median(v) for k, v in runs.items()}
    ratio = median["static"] / median["import_torch"]
    print(json.dumps({"python": sys.version.split()[0], "static_s": round(median["static"], 3),
                      "import_torch_s": round(median["import_torch"], 3), "ratio": round(ratio, 2),
                      "target": TARGET, "heavy_imports": heavy_imports(),
                      "meets_target": ratio <= TARGET and not heavy_imports()}, indent=2))


if __name__ == "__main__":
    main()
