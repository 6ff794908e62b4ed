"""How a model's samples are written: PNG grids of images, WAV files of audio.

An output writer turns a batch of samples (as `Model.generate` returns them)
into files and TensorBoard summaries; the trainer and `gflow-sample` call it
without knowing what the samples are.
"""

import os

import numpy as np
import tensorflow as tf

from gflow.io.audio import write_wav
from gflow.io.images import save_png

__all__ = ["OutputWriter", "ImageGrid", "WavFiles"]


class OutputWriter:
  """Base: `write(samples, stem)` → list of paths; `summary(samples, step)`;
  `extension`, the kind of file it writes (".png", ".wav")."""

  extension = ""

  def write(self, samples, stem):
    """Writes `samples` to files named from `stem` (a path without extension)."""
    raise NotImplementedError

  def summary(self, samples, step):
    """TensorBoard summaries of `samples` under the default writer."""
    raise NotImplementedError


class ImageGrid(OutputWriter):
  """uint8 images [N, H, W, C] → one PNG grid, upscaled so a cell is ≥ `min_size` px."""

  extension = ".png"

  def __init__(self, min_size=64, max_summary=16):
    self.min_size = min_size
    self.max_summary = max_summary

  def write(self, samples, stem):
    images = np.asarray(samples)
    path = f"{stem}.png"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_png(path, images, upscale=max(1, self.min_size // images.shape[1]))
    return [path]

  def summary(self, samples, step):
    images = np.asarray(samples)[:self.max_summary]
    tf.summary.image("samples", images, step=step, max_outputs=self.max_summary)


class WavFiles(OutputWriter):
  """Waveforms [N, T] in [-1, 1] → `<stem>_<i>.wav` at `sample_rate` (16-bit PCM)."""

  extension = ".wav"

  def __init__(self, sample_rate, max_summary=4):
    if sample_rate <= 0:
      raise ValueError(f"sample_rate must be positive; got {sample_rate}.")
    self.sample_rate = int(sample_rate)
    self.max_summary = max_summary

  def write(self, samples, stem):
    waves = np.asarray(samples)
    if waves.ndim != 2:
      raise ValueError(f"WavFiles writes waveforms [N, T]; got shape {waves.shape}.")
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    paths = []
    for i, wave in enumerate(waves):
      path = f"{stem}_{i:03d}.wav"
      write_wav(path, wave, self.sample_rate)
      paths.append(path)
    return paths

  def summary(self, samples, step):
    waves = np.clip(np.asarray(samples, np.float32)[:self.max_summary], -1, 1)
    tf.summary.audio("samples", waves[..., None], self.sample_rate, step=step,
                     max_outputs=self.max_summary)
