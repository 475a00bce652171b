"""What a check costs against the floor of importing the target's module, measured in one run as ratios.

    python benchmarks/check_cost.py [--repeat 3]

Each command runs as its own subprocess; wall time is the median of the repeats, peak RSS the child's
ru_maxrss (resource.getrusage(RUSAGE_CHILDREN), read after each child as the max so far, so every command
runs in its own fresh measuring process). Targets: the seed example <= 1.10x its import; the Llama-70B-shaped
wrapper (benchmarks/huge_wrapper.py, built on the meta device) <= 1.5x time and <= 1.2x peak RSS.
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
SEED = ("examples/higgs_audio_wrapper.py", "HiggsAudioModelWrapper", '{"gradient_checkpointing": true}', 1.10, None)
HUGE = ("benchmarks/huge_wrapper.py", "Llama70BWrapper", '{"gradient_checkpointing": true, "save_strategy": "steps"}',
        1.5, 1.2)

_MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.perf_counter() - start
print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def measure(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one command, in a fresh process so RUSAGE_CHILDREN is its own."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *command], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), float(out[1]) / 1024


def import_only(path: str) -> list[str]:
    code = (f"import importlib.util as u; s = u.spec_from_file_location('m', {path!r}); "
            "s.loader.exec_module(u.module_from_spec(s))")
    return [sys.executable, "-c", code]


def check(path: str, name: str, args: str) -> list[str]:
    return [sys.executable, "-m", "trainer_compat", "check", f"{path}:{name}", "--args", args, "--format", "json"]


def compare(case: tuple, repeat: int) -> dict:
    path, name, args, time_target, rss_target = case
    runs = {"import": [], "check": []}
    for _ in range(repeat):  # interleaved, so drift hits both alike
        runs["import"].append(measure(import_only(path)))
        runs["check"].append(measure(check(path, name, args)))
    wall = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    rss = {k: max(r for _, r in v) for k, v in runs.items()}
    result = {"target": f"{path}:{name}", "import_s": round(wall["import"], 2), "check_s": round(wall["check"], 2),
              "time_ratio": round(wall["check"] / wall["import"], 2), "time_target": time_target,
              "import_rss_mb": round(rss["import"]), "check_rss_mb": round(rss["check"]),
              "rss_ratio": round(rss["check"] / rss["import"], 2), "rss_target": rss_target}
    result["meets_targets"] = result["time_ratio"] <= time_target and (rss_target is None or
                                                                      result["rss_ratio"] <= rss_target)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    start = time.perf_counter()
    results = [compare(case, options.repeat) for case in (SEED, HUGE)]
    print(json.dumps({"python": sys.version.split()[0], "results": results,
                      "total_s": round(time.perf_counter() - start, 1)}, indent=2))


if __name__ == "__main__":
    main()
