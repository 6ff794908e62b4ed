"""Log-mel features: the Slaney filterbank against the formulas, centred frames, a pure tone."""

import math

import numpy as np
import pytest
import tensorflow as tf

from gflow.data import mel as gmel


def _slaney_mel(f):  # written from the definition, independently of gflow.data.mel
  return f * 3 / 200 if f < 1000 else 15 + 27 * math.log(f / 1000) / math.log(6.4)


def _slaney_hz(m):
  return m * 200 / 3 if m < 15 else 1000 * 6.4 ** ((m - 15) / 27)


def test_slaney_scale_known_points_and_round_trip():
  np.testing.assert_allclose(gmel.hz_to_mel([200 / 3, 1000, 6400]), [1, 15, 42], rtol=1e-12)
  f = np.array([0, 100, 999, 1000, 2500, 8000, 11025])
  np.testing.assert_allclose(gmel.mel_to_hz(gmel.hz_to_mel(f)), f, rtol=1e-12, atol=1e-9)
  np.testing.assert_allclose(gmel.hz_to_mel(f), [_slaney_mel(x) for x in f], rtol=1e-12)


@pytest.mark.parametrize("config", [gmel.MelConfig(),
                                    gmel.MelConfig(sample_rate=8000, n_fft=256, hop=64,
                                                   n_mels=40, fmin=50, fmax=4000)])
def test_filterbank_matches_the_slaney_formulas(config):
  weights = gmel.mel_filterbank(config).numpy()
  n_bins = 1 + config.n_fft // 2
  assert weights.shape == (n_bins, config.n_mels)
  lo, hi = _slaney_mel(config.fmin), _slaney_mel(config.fmax)
  edges = [_slaney_hz(lo + (hi - lo) * i / (config.n_mels + 1)) for i in range(config.n_mels + 2)]
  for band in range(config.n_mels):
    a, b, c = edges[band:band + 3]
    height = 2 / (c - a)  # area normalisation: a triangle of base c − a and area 1
    for k in range(n_bins):
      f = k * config.sample_rate / config.n_fft
      expected = height * ((f - a) / (b - a) if a <= f <= b else (c - f) / (c - b) if b < f <= c
                           else 0.0)
      assert weights[k, band] == pytest.approx(expected, rel=1e-5, abs=1e-9), (band, k)
    # Each continuous triangle has unit area over Hz.
    grid = np.linspace(a, c, 2001)
    tri = height * np.minimum((grid - a) / (b - a), (c - grid) / (c - b))
    assert np.sum((tri[1:] + tri[:-1]) / 2 * np.diff(grid)) == pytest.approx(1.0, rel=1e-4)
  # Not what tf.signal gives (HTK scale, peak-normalised):
  htk = tf.signal.linear_to_mel_weight_matrix(config.n_mels, n_bins, config.sample_rate,
                                              config.fmin, config.fmax).numpy()
  assert not np.allclose(htk, weights, atol=1e-3)


def test_centred_frames_one_per_hop():
  config = gmel.MelConfig()
  wave = tf.random.stateless_uniform([2, 256 * 10], [1, 2], -0.5, 0.5)
  spec = gmel.stft_magnitude(wave, config)
  assert spec.shape == (2, 10, 513)
  # Frame j is centred on sample j·hop: a click there lands in frame j only (of its neighbours).
  click = np.zeros(256 * 10, np.float32)
  click[256 * 4] = 1.0
  energy = gmel.stft_magnitude(click, config).numpy().sum(axis=-1)
  assert np.argmax(energy) == 4
  with pytest.raises(tf.errors.InvalidArgumentError, match="reflect padding needs"):
    gmel.stft_magnitude(tf.zeros([100]), config)


def test_a_pure_tone_peaks_in_its_band_and_silence_is_the_floor():
  config = gmel.MelConfig()
  t = np.arange(256 * 40) / config.sample_rate
  for hz in (440.0, 3000.0):
    mel = gmel.log_mel_spectrogram(0.5 * np.sin(2 * np.pi * hz * t), config).numpy()
    centres = gmel.mel_to_hz(np.linspace(gmel.hz_to_mel(0), gmel.hz_to_mel(8000), 82))[1:-1]
    assert abs(int(np.argmax(mel[20])) - int(np.argmin(np.abs(centres - hz)))) <= 1
  silence = gmel.log_mel_spectrogram(np.zeros(256 * 4, np.float32), config).numpy()
  np.testing.assert_allclose(silence, np.log(1e-5), rtol=1e-6)


def test_bad_settings_are_named():
  with pytest.raises(ValueError, match=r"fmax <= sample_rate/2 = 4000"):
    gmel.MelConfig(sample_rate=8000, fmax=8000)
