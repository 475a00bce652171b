"""The argument files of distributed runs are checked as they are, without starting a process group (issue #14):
exit 0 or 1, never 2, and nothing of the launch is left in the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

import trainer_compat
from trainer_compat.testing import tiny_causal_lm

ROOT = Path(__file__).resolve().parent.parent
ARG_SETS = {
    "ddp_gloo": {"use_cpu": True, "ddp_backend": "gloo", "ddp_find_unused_parameters": False},
    "ddp_local_rank": {"use_cpu": True, "ddp_backend": "gloo", "local_rank": 0},
    "fsdp": {"use_cpu": True, "ddp_backend": "gloo", "fsdp": "full_shard auto_wrap",
             "fsdp_config": {"transformer_layer_cls_to_wrap": ["GPT2Block"]}},
    "deepspeed": {"ddp_backend": "gloo", "deepspeed": {"zero_optimization": {"stage": 2},
                                                         "train_micro_batch_size_per_gpu": "auto"}},
}


@pytest.mark.parametrize("name", sorted(ARG_SETS))
def test_distributed_arguments_are_checked_without_a_process_group(name) -> None:
    environment = _launch_environment()
    report = trainer_compat.check(tiny_causal_lm, args=ARG_SETS[name])
    assert report.transformers_version
    assert not (dist.is_available() and dist.is_initialized())
    assert _launch_environment() == environment


def _launch_environment() -> dict[str, str]:
    """The environment but torch's own compile-cache location, which importing torch._inductor sets once."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TORCHINDUCTOR_")}


@pytest.mark.parametrize("name", ["ddp_gloo", "fsdp"])
def test_cli_exits_with_a_verdict_on_a_ddp_argument_file(name, tmp_path) -> None:
    path = tmp_path / "args.json"
    path.write_text(json.dumps(ARG_SETS[name]), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "trainer_compat", "check",
                             "examples/higgs_audio_wrapper.py:HiggsAudioModelWrapper", "--args", str(path),
                             "--format", "concise"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode in (0, 1), result.stderr
