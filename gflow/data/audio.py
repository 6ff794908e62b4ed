"""Audio data sources: a folder of WAV files, streamed from the files.

Training examples are fixed-length segments: example k of the stream is clip
perm_e[k mod N] of epoch e = k div N (a stateless shuffle of the clips seeded by
(seed, e)), cut at an offset drawn from the stateless seed (seed, k); clips
shorter than the segment are zero-padded at the end. So batch k is a function of
(seed, k) under any number of replicas, and a resumed run continues exactly.
Evaluation yields whole clips in file order, zero-padded to the longest clip of
each batch, with their lengths (`"length"`) so models can mask the padding.
Waveforms are float32 in [-1, 1], mono (channels averaged).

With a `gflow.data.mel.MelConfig`, examples also carry `"conditioning"`: the
log-mel spectrogram of the segment ([⌈segment_length / hop⌉, n_mels]); the
spectrograms of evaluation clips are padded with the log floor.
"""

import os

import numpy as np
import tensorflow as tf

from gflow.data.baseline import fit_gaussian, gaussian_log_likelihood
from gflow.data.images import split_fixed
from gflow.data.mel import log_mel_spectrogram
from gflow.data.pipeline import example_seed, shuffled_stream
from gflow.data.source import Baseline, DataSource

__all__ = ["AudioExamples", "WavFolder", "load_wav_folder", "random_segment", "wav_header"]

TEST_FRACTION = 0.1


def wav_header(path):
  """(sample rate, channels, frames) from a PCM WAV file's header (the samples are not
  read); ValueError for a file that is not a PCM WAV."""
  import wave
  try:
    with wave.open(path, "rb") as f:
      return f.getframerate(), f.getnchannels(), f.getnframes()
  except (wave.Error, EOFError) as e:
    raise ValueError(f"{path}: not a readable PCM WAV file ({e}).") from None


def random_segment(wave, length, seed):
  """`length` consecutive samples of `wave` [T] from an offset drawn uniformly with the
  stateless `seed`; a shorter wave is zero-padded at the end."""
  wave = tf.pad(wave, [[0, tf.maximum(length - tf.shape(wave)[0], 0)]])
  room = tf.shape(wave)[0] - length + 1
  start = tf.random.stateless_uniform([], seed, 0, room, dtype=tf.int32)
  return tf.ensure_shape(wave[start:start + length], [length])


def _decode(contents):
  wave, _ = tf.audio.decode_wav(contents)
  return tf.reduce_mean(wave, axis=-1)


class AudioExamples:
  """What every audio source shares: segments and clips as examples, with log-mel
  conditioning when a `MelConfig` is given."""

  def _setup_audio(self, sample_rate, segment_length, mel):
    if segment_length < 1:
      raise ValueError(f"config.data.segment_length must be >= 1 sample; got {segment_length}.")
    if mel is not None:
      if mel.sample_rate != sample_rate:
        raise ValueError(f"{self.name} is at {sample_rate} Hz but config.data.mel.sample_rate "
                         f"is {mel.sample_rate}; set --config.data.mel.sample_rate="
                         f"{sample_rate} (and fmax <= {sample_rate // 2}).")
    self.sample_rate = int(sample_rate)
    self.segment_length = int(segment_length)
    self.mel = mel

  @property
  def element_spec(self):
    spec = {"x": tf.TensorSpec([self.segment_length], tf.float32)}
    if self.mel is not None:
      frames = -(-self.segment_length // self.mel.hop)
      spec["conditioning"] = tf.TensorSpec([frames, self.mel.n_mels], tf.float32)
    return spec

  def baselines(self, seed, limit=0):
    """The i.i.d. Gaussian fitted to training segments, scored on the test clips."""
    fit = fit_gaussian(self, seed)
    values = gaussian_log_likelihood(fit, self.eval_dataset(1, seed, limit))
    return [Baseline("Gaussian baseline", "log-likelihood", values, fit.describe())]

  def _segment_example(self, wave, seed):
    x = random_segment(wave, self.segment_length, seed)
    if self.mel is None:
      return {"x": x}
    return {"x": x, "conditioning": log_mel_spectrogram(x, self.mel)}

  def _clip_example(self, wave):
    if self.mel is None:
      return {"x": wave, "length": tf.shape(wave)[0]}
    return {"x": wave, "length": tf.shape(wave)[0],
            "conditioning": log_mel_spectrogram(wave, self.mel)}

  def _batch_clips(self, ds, batch_size):
    shapes = {"x": [None], "length": []}
    values = {"x": 0.0, "length": 0}
    if self.mel is not None:
      shapes["conditioning"] = [None, self.mel.n_mels]
      values["conditioning"] = float(np.log(self.mel.floor))
    return ds.padded_batch(batch_size, padded_shapes=shapes, padding_values=values)


class WavFolder(AudioExamples, DataSource):
  """WAV files (one sample rate) split by file into train and test; batches
  {"x": [segment_length] float32} for training and {"x": [T], "length": T} clips
  for evaluation (plus "conditioning" with a mel config)."""

  def __init__(self, name, train_files, test_files, sample_rate, segment_length, mel=None):
    self.name = name
    self.train_files = list(train_files)
    self.test_files = list(test_files)
    self._setup_audio(sample_rate, segment_length, mel)

  @property
  def num_train(self):
    return len(self.train_files)

  @property
  def num_test(self):
    return len(self.test_files)

  def train_dataset(self, global_batch, seed, start_step=0):
    files = tf.constant(self.train_files)
    return shuffled_stream(
        self.num_train, global_batch, seed, start_step,
        lambda k, i: self._segment_example(_decode(tf.io.read_file(files[i])),
                                           example_seed(seed, k)))

  def eval_dataset(self, batch_size, seed, limit=0):
    files = self.test_files[:limit] if limit else self.test_files
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(files)).map(
        lambda f: self._clip_example(_decode(tf.io.read_file(f))))
    return self._batch_clips(ds, batch_size)


def load_wav_folder(path, segment_length, sample_rate=0, mel=None,
                    test_fraction=TEST_FRACTION):
  """Every .wav under `path` (recursively), split by file with a fixed seeded
  permutation (10 % test). All files must share one sample rate (`sample_rate`, if
  given, must be it)."""
  if not path or not os.path.isdir(path):
    raise FileNotFoundError(f"WAV folder {path!r} does not exist. Set --config.data.path "
                            "to a folder of .wav files.")
  files = sorted(os.path.join(root, f) for root, _, names in os.walk(path)
                 for f in names if f.lower().endswith(".wav"))
  if len(files) < 2:
    raise ValueError(f"WAV folder {path!r} holds {len(files)} .wav files; need at least 2 "
                     "for a train/test split by file.")
  rates = {}
  for f in files:
    rates.setdefault(wav_header(f)[0], []).append(f)
  if len(rates) > 1:
    summary = ", ".join(f"{r} Hz: {len(v)} files (e.g. {v[0]})" for r, v in sorted(rates.items()))
    raise ValueError(f"WAV files in {path!r} have different sample rates ({summary}); "
                     "resample them to one rate first.")
  rate = next(iter(rates))
  if sample_rate and rate != sample_rate:
    raise ValueError(f"WAV files in {path!r} are at {rate} Hz but config.data.sample_rate "
                     f"is {sample_rate}; resample the files or set "
                     f"--config.data.sample_rate={rate}.")
  train, test = split_fixed(np.array(files), test_fraction)
  return WavFolder(f"wav_folder:{path}", train, test, rate, segment_length, mel)
