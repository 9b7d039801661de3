"""The plain C loops that CPUs without AVX2 run (the kernels pick AVX2 at run time): the
reference property tests again, in a process started with ``ELSE_DSE_NO_AVX2=1``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from else_dse import _kernels

TESTS = Path(__file__).resolve().parent


def test_the_switch_is_read_once_per_process():
    code = "from else_dse import _kernels; print(_kernels.simd())"
    env = {**os.environ, "ELSE_DSE_NO_AVX2": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    env["ELSE_DSE_NO_AVX2"] = ""                      # empty: not set
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(_kernels.simd())


def test_reference_properties_on_the_plain_c_loops():
    """count_events and event_curve against the numpy reference (odd shapes, stride,
    dilation, padding, groups, both loops, every axis and direction, thresholds, tau, the
    open-loop drift) with the AVX2 loops switched off."""
    env = {**os.environ, "ELSE_DSE_NO_AVX2": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           str(TESTS / "test_kernels_reference.py"), str(TESTS / "test_kernels_curve.py"),
           str(TESTS / "test_threads.py")]
    out = subprocess.run(cmd, env=env, cwd=TESTS.parent, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout
