"""WAV files through `tf.audio`: float waveforms in [-1, 1]."""

import numpy as np
import tensorflow as tf

__all__ = ["read_wav", "write_wav"]


def write_wav(path, wave, sample_rate):
  """Writes a mono waveform [T] (floats, clipped to [-1, 1]) as 16-bit PCM."""
  wave = np.clip(np.asarray(wave, np.float32), -1.0, 1.0).reshape(-1, 1)
  tf.io.write_file(path, tf.audio.encode_wav(wave, int(sample_rate)))


def read_wav(path):
  """(mono waveform [T] float32 in [-1, 1], sample rate); channels are averaged."""
  try:
    contents = tf.io.read_file(path)
    wave, rate = tf.audio.decode_wav(contents)
  except tf.errors.NotFoundError:
    raise FileNotFoundError(f"No WAV file at {path!r}.") from None
  except tf.errors.InvalidArgumentError as e:
    raise ValueError(f"{path}: not a readable PCM WAV file ({e.message}).") from None
  return tf.reduce_mean(wave, axis=-1).numpy(), int(rate.numpy())
