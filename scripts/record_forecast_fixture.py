"""Record what an installed transformers really does for a few zoo models: tests/fixtures/forecast/<version>.json.

    /work/venvs/tf446/bin/python scripts/record_forecast_fixture.py

For each (zoo model, argument profile) it runs the real Trainer (tests/trainer_runner.py: ok, failed or silently
wrong) and the check, and records both. tests/test_forecast.py then checks, on any other installed release, that
``--transformers-version <this version>`` gives the verdict this release really gave.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import trainer_compat  # noqa: E402
from tests.test_agreement import PROFILES  # noqa: E402
from tests.trainer_runner import run  # noqa: E402
from tests.zoo import ZOO  # noqa: E402
from trainer_compat.versions import installed_transformers  # noqa: E402

# Chosen where releases differ: loss kwargs (4.47/4.48), label smoothing config read (4.56), use_cache (5.0),
# checkpointing calls (5.16+), plus plain cases.
CASES = (
    ("drops_num_items", "grad_accum"),
    ("passes_loss_kwargs", "grad_accum"),
    ("kwargs_forward", "grad_accum"),
    ("dict_config", "defaults"),
    ("explicit_wrapper", "checkpointing"),
    ("fixed_signature_shim", "checkpointing"),
    ("backbone_delegating", "checkpointing"),
    ("gpt2", "defaults"),
    ("seq2seq_no_generate", "generate"),
)


def record_case(entry_name: str, profile_name: str, workdir: Path) -> dict[str, object]:
    entry = next(e for e in ZOO if e.name == entry_name)
    profile = next(p for p in PROFILES if p.name == profile_name)
    report = trainer_compat.check(entry.build(), args=profile.fields(), trainer=entry.trainer)
    outcome = run(entry.build, entry.trainer, profile, workdir)
    return {"model": entry_name, "profile": profile_name, "trainer_ok": outcome.ok, "outcome": str(outcome),
            "errors": sorted({f.rule for f in report.findings if f.severity.value == "error"})}


def main() -> int:
    version = str(installed_transformers())
    cases = []
    for model, profile in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            cases.append(record_case(model, profile, Path(tmp)))
        print(cases[-1]["model"], cases[-1]["profile"], cases[-1]["trainer_ok"], cases[-1]["errors"])
    out = ROOT / "tests" / "fixtures" / "forecast" / f"{version}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"transformers": version, "cases": cases}, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
