"""README's main job, end to end (slow: minutes; run with `pytest -m slow`)."""

import time

import pytest

from tests.conftest import CONFIG, run_cli


@pytest.mark.slow
def test_glow_on_digits_beats_six_bits_per_dim_in_ten_minutes(tmp_path):
  start = time.time()
  out = run_cli("train", f"--config={CONFIG}:digits", f"--workdir={tmp_path}").stdout
  minutes = (time.time() - start) / 60
  bpd = float([l for l in out.splitlines() if l.startswith("test bits/dim: ")][0].split()[2])
  assert bpd < 6.0, out[-2000:]
  assert minutes < 10
  assert f"test bits/dim: {bpd:.4f} ± " in run_cli("evaluate", f"--workdir={tmp_path}").stdout
