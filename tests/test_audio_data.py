"""A folder of WAV files as a data source: stateless segments, whole test clips, clear errors."""

import os

import ml_collections
import numpy as np
import pytest

from gflow import data as gdata
from gflow.io import read_wav, write_wav

RATE = 8000


def _folder(tmp_path, lengths, rate=RATE):
  """File i holds the constant level (i + 1)/32 for lengths[i] samples."""
  folder = tmp_path / "wavs"
  os.makedirs(folder / "sub", exist_ok=True)
  for i, n in enumerate(lengths):
    where = folder / "sub" if i % 2 else folder
    write_wav(str(where / f"clip{i:02d}.wav"), np.full(n, (i + 1) / 32), rate)
  return str(folder)


def _config(path, segment_length=100, sample_rate=0):
  c = ml_collections.ConfigDict()
  c.name, c.path, c.segment_length, c.sample_rate = "wav_folder", path, segment_length, sample_rate
  return c


def test_wav_round_trip(tmp_path):
  wave = np.sin(np.linspace(0, 20, 1000)) * 0.9
  write_wav(str(tmp_path / "a.wav"), wave, 22050)
  back, rate = read_wav(str(tmp_path / "a.wav"))
  assert rate == 22050
  np.testing.assert_allclose(back, wave, atol=1 / 32767)


def test_segments_are_stateless_and_each_epoch_visits_every_training_clip(tmp_path):
  lengths = [300 + 37 * i for i in range(19)] + [60]  # one clip shorter than a segment
  source = gdata.load(_config(_folder(tmp_path, lengths)))
  assert (source.num_train, source.num_test, source.event_shape) == (18, 2, (100,))
  full = [b["x"].numpy() for b in source.train_dataset(6, seed=1).take(9)]
  resumed = [b["x"].numpy() for b in source.train_dataset(6, seed=1, start_step=4).take(5)]
  for a, b in zip(full[4:], resumed):
    np.testing.assert_array_equal(a, b)
  segments = np.concatenate(full)
  assert segments.shape == (54, 100)
  train_levels = sorted(round(read_wav(f)[0][0] * 32) for f in source.train_files)
  for epoch in range(3):
    rows = segments[epoch * 18:(epoch + 1) * 18]
    levels = sorted(int(round(r[0] * 32)) for r in rows)
    assert levels == train_levels
  short = [r for r in segments if abs(r[0] * 32 - 20) < 0.5]  # the 60-sample clip, if trained
  for r in short:
    assert np.all(r[60:] == 0)  # zero-padded at the end


def test_eval_yields_whole_clips_with_their_lengths(tmp_path):
  lengths = [300 + 37 * i for i in range(20)]
  source = gdata.load(_config(_folder(tmp_path, lengths)))
  batch = next(iter(source.eval_dataset(8, seed=0)))
  expected = [len(read_wav(f)[0]) for f in source.test_files]
  assert list(batch["length"].numpy()) == expected
  assert batch["x"].shape == (2, max(expected))


def test_errors_name_the_problem(tmp_path):
  with pytest.raises(FileNotFoundError, match="WAV folder .* does not exist"):
    gdata.load(_config(str(tmp_path / "nowhere")))
  path = _folder(tmp_path, [200, 200, 200])
  with pytest.raises(ValueError, match=r"are at 8000 Hz but config.data.sample_rate is 22050.*"
                                       r"--config.data.sample_rate=8000"):
    gdata.load(_config(path, sample_rate=22050))
  write_wav(os.path.join(path, "other.wav"), np.zeros(100), 16000)
  with pytest.raises(ValueError, match=r"different sample rates \(8000 Hz: 3 files.*16000 Hz: 1"):
    gdata.load(_config(path))
  os.remove(os.path.join(path, "other.wav"))
  with open(os.path.join(path, "broken.wav"), "wb") as f:
    f.write(b"RIFF\x00\x00not a wave")
  with pytest.raises(ValueError, match=r"broken.wav: not a readable PCM WAV file"):
    gdata.load(_config(path))
  with pytest.raises(ValueError, match="segment_length must be a whole number"):
    gdata.event_shape(_config(path, segment_length=0))


def test_mel_conditioning_is_the_log_mel_of_each_segment_and_clip(tmp_path):
  from gflow.data.mel import MelConfig, log_mel_spectrogram
  rng = np.random.RandomState(0)
  folder = tmp_path / "speechy"
  os.makedirs(folder)
  for i in range(10):
    write_wav(str(folder / f"c{i}.wav"), 0.3 * rng.randn(700 + 50 * i).clip(-3, 3) / 3, RATE)
  c = _config(str(folder), segment_length=256)
  c.features = "mel"
  c.mel = ml_collections.ConfigDict(dict(sample_rate=RATE, n_fft=128, hop=64, n_mels=20,
                                         fmax=4000.0))
  source = gdata.load(c)
  mel = MelConfig(sample_rate=RATE, n_fft=128, hop=64, n_mels=20, fmax=4000.0)
  assert source.element_spec["conditioning"].shape == (4, 20)
  batch = next(iter(source.train_dataset(4, seed=0)))
  np.testing.assert_allclose(batch["conditioning"], log_mel_spectrogram(batch["x"], mel),
                             rtol=1e-5, atol=1e-5)
  clips = next(iter(source.eval_dataset(1, seed=0)))
  n = int(clips["length"][0])
  assert clips["conditioning"].shape == (1, -(-n // 64), 20)
  c.mel.sample_rate = 22050
  with pytest.raises(ValueError, match=r"is at 8000 Hz but config.data.mel.sample_rate is 22050"):
    gdata.load(c)
  c.mel.sample_rate, c.segment_length = RATE, 250  # not a multiple of the hop: 4 frames
  assert gdata.load(c).element_spec["conditioning"].shape == (4, 20)
  c.features = "mfcc"
  with pytest.raises(ValueError, match="data.features must be '' \\(none\\) or 'mel'"):
    gdata.load(c)


def test_the_gaussian_baseline_is_the_closed_form_for_gaussian_audio(tmp_path):
  """Clips of N(0.05, 0.1²) noise: the fitted baseline scores each clip at about
  E log N(x) = -½ log(2πσ²) - ½, and a batch's zero padding is not scored."""
  from gflow.data.baseline import fit_gaussian, gaussian_log_likelihood
  rng = np.random.RandomState(0)
  folder = tmp_path / "noise"
  os.makedirs(folder)
  for i in range(30):
    write_wav(str(folder / f"n{i:02d}.wav"), 0.05 + 0.1 * rng.randn(4000 + 500 * (i % 4)), RATE)
  source = gdata.load(_config(str(folder), segment_length=1000))
  fit = fit_gaussian(source, seed=0, num_segments=256)
  assert abs(fit.mean - 0.05) < 3e-3 and abs(fit.std - 0.1) < 2e-3
  assert fit.count % 1000 == 0 and 256_000 <= fit.count < 256_000 + 27_000
  expected = -0.5 * np.log(2 * np.pi * 0.01) - 0.5
  one = gaussian_log_likelihood(fit, source.eval_dataset(1, seed=0))
  padded = gaussian_log_likelihood(fit, source.eval_dataset(3, seed=0))  # lengths differ
  assert len(one) == source.num_test == 3
  np.testing.assert_allclose(padded, one, rtol=1e-6)
  np.testing.assert_allclose(one, expected, atol=0.05)  # ±0.011 per 4,000-sample clip
  (baseline,) = source.baselines(seed=0)
  assert baseline.figure == "log-likelihood" and "fitted to" in baseline.description
