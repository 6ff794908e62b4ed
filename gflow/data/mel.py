"""Log-mel spectrograms in `tf.signal`, as vocoders are fed them (librosa's conventions).

    mel = log_mel_spectrogram(wave, MelConfig())   # [..., ⌈T / hop⌉, n_mels]

* Centred frames: the waveform is reflect-padded by n_fft/2 on both sides and
  framed every `hop` samples with a periodic Hann window of n_fft (frame j is
  centred on sample j·hop); ⌈T / hop⌉ frames are kept, so frames · hop = T when T is
  a multiple of the hop (librosa's last frame, centred past the end, is dropped),
  and otherwise the frames cover T with less than a hop to spare.
* Magnitude |STFT| (power 1), then a Slaney-scale, area-normalised mel filterbank
  (librosa's default; `tf.signal.linear_to_mel_weight_matrix` is HTK-scale and
  unnormalised, a different feature), then ln(max(mel, 1e-5)).

The Slaney scale is linear below 1 kHz (200/3 Hz per mel) and logarithmic above
(27 mels per factor 6.4); each triangular filter is scaled by 2/(f_right − f_left)
so that its area over frequency is 1.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

__all__ = ["MelConfig", "hz_to_mel", "mel_to_hz", "mel_filterbank", "stft_magnitude",
           "log_mel_spectrogram"]

_F_SP = 200.0 / 3           # Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOG_STEP = math.log(6.4) / 27.0


@dataclasses.dataclass(frozen=True)
class MelConfig:
  """Feature settings; the defaults are LJSpeech's (22,050 Hz, n_fft 1024, hop 256,
  80 bands over 0–8,000 Hz)."""
  sample_rate: int = 22050
  n_fft: int = 1024
  hop: int = 256
  n_mels: int = 80
  fmin: float = 0.0
  fmax: float = 8000.0
  floor: float = 1e-5

  def __post_init__(self):
    if self.n_fft < 2 or self.hop < 1 or self.n_mels < 1:
      raise ValueError(f"n_fft >= 2, hop >= 1 and n_mels >= 1 needed; got {self.n_fft}, "
                       f"{self.hop}, {self.n_mels}.")
    if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
      raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2 = {self.sample_rate / 2}; "
                       f"got fmin {self.fmin}, fmax {self.fmax}.")

  @classmethod
  def from_config(cls, c):
    """From a `config.data.mel` ConfigDict (missing fields keep their defaults)."""
    return cls(**{f.name: c[f.name] for f in dataclasses.fields(cls) if f.name in c})


def hz_to_mel(hz):
  """Slaney mel of frequencies `hz` (numpy)."""
  hz = np.asarray(hz, np.float64)
  log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
  return np.where(hz < _MIN_LOG_HZ, hz / _F_SP, log_part)


def mel_to_hz(mel):
  """Inverse of `hz_to_mel`."""
  mel = np.asarray(mel, np.float64)
  log_part = _MIN_LOG_HZ * np.exp(_LOG_STEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
  return np.where(mel < _MIN_LOG_MEL, mel * _F_SP, log_part)


def mel_filterbank(config):
  """[1 + n_fft/2, n_mels] float32 weights: triangles between n_mels + 2 points equally
  spaced in Slaney mel from fmin to fmax, each with unit area over Hz."""
  bins = np.linspace(0.0, config.sample_rate / 2, 1 + config.n_fft // 2)
  edges = mel_to_hz(np.linspace(hz_to_mel(config.fmin), hz_to_mel(config.fmax),
                                config.n_mels + 2))
  left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
  rising = (bins[None] - left) / (centre - left)
  falling = (right - bins[None]) / (right - centre)
  weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (right - left))
  return tf.constant(weights.T, tf.float32)


def stft_magnitude(wave, config):
  """|STFT| [..., ⌈T / hop⌉, 1 + n_fft/2] of waveforms [..., T]: centred frames
  (reflect padding of n_fft/2), periodic Hann window."""
  wave = tf.convert_to_tensor(wave, tf.float32)
  pad = config.n_fft // 2
  length = tf.shape(wave)[-1]
  tf.debugging.assert_greater(length, pad, message=(
      f"reflect padding needs more than n_fft/2 = {pad} samples"))
  rank = wave.shape.rank
  padded = tf.pad(wave, [[0, 0]] * (rank - 1) + [[pad, pad]], mode="REFLECT")
  spec = tf.signal.stft(padded, frame_length=config.n_fft, frame_step=config.hop,
                        fft_length=config.n_fft,
                        window_fn=lambda n, dtype: tf.signal.hann_window(n, periodic=True,
                                                                         dtype=dtype))
  return tf.abs(spec)[..., :(length + config.hop - 1) // config.hop, :]


def log_mel_spectrogram(wave, config):
  """ln(max(mel, floor)) [..., ⌈T / hop⌉, n_mels] of waveforms [..., T] in [-1, 1]."""
  mel = tf.tensordot(stft_magnitude(wave, config), mel_filterbank(config), axes=1)
  return tf.math.log(tf.maximum(mel, config.floor))
