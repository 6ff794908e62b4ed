import numpy as np
import pytest

from gflow.train import WarmupExponentialDecay


def test_warmup_then_decay_really_applies():
  s = WarmupExponentialDecay(1e-3, warmup_steps=100, decay_rate=0.5, decay_steps=50)
  lr = {t: float(s(t)) for t in (0, 49, 99, 100, 150, 200, 300)}
  np.testing.assert_allclose(lr[0], 1e-5, rtol=1e-5)
  np.testing.assert_allclose(lr[49], 5e-4, rtol=1e-5)
  np.testing.assert_allclose(lr[99], 1e-3, rtol=1e-5)
  np.testing.assert_allclose(lr[150], 5e-4, rtol=1e-5)
  np.testing.assert_allclose(lr[200], 2.5e-4, rtol=1e-5)
  np.testing.assert_allclose(lr[300], 6.25e-5, rtol=1e-5)


def test_bad_schedule():
  with pytest.raises(ValueError, match="Bad schedule"):
    WarmupExponentialDecay(1e-3, decay_rate=0.)
