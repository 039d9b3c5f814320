"""bench/gpu.py exists and, without CUDA, says so and exits 0 (its figures need a GPU)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from studio.config import ROOT


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the bench measures for minutes: run it by hand")
def test_gpu_bench_says_plainly_there_is_no_gpu():
    proc = subprocess.run([sys.executable, "bench/gpu.py"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "no CUDA device here; nothing measured" in proc.stdout
