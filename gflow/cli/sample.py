"""gflow-sample: samples from a trained run, written as the model writes them (PNG grid, WAV).

    gflow-sample --workdir=runs/digits --num_samples=64 --temperature=0.8 --out=samples.png
    gflow-sample --workdir=runs/waveflow --wav=speech.wav --out=resynth.wav   # from its mel
    gflow-sample --workdir=runs/waveflow --mel=mel.npy                        # [frames, bands]

A conditional model is given the conditioning of the first test examples, or the
log-mel spectrogram of `--wav` (computed with the run's own feature settings) or
the array in `--mel`. Audio runs print the synthesis speed in × real time.
"""

import math
import os
import time

from absl import flags

from gflow.cli import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A gflow-train workdir.")
_NUM = flags.DEFINE_integer("num_samples", 64, "How many samples.", lower_bound=1)
_TEMP = flags.DEFINE_float("temperature", 1.0, "Scale of the prior's standard deviation.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_OUT = flags.DEFINE_string("out", "", "Output path; its extension is the writer's "
                           "(default: <workdir>/samples/sample_T<temp>).")
_WAV = flags.DEFINE_string("wav", "", "Resynthesise this WAV file from its mel spectrogram "
                           "(runs trained with config.data.features='mel').")
_MEL = flags.DEFINE_string("mel", "", "Synthesise from this .npy log-mel spectrogram, "
                           "[frames, bands] or [n, frames, bands].")
_XLA_CACHE = common.define_xla_cache_flag()
flags.mark_flag_as_required("workdir")


def main(argv):
  common.reject_extra_args(argv)
  if _NUM.value < 1:
    raise ValueError(f"--num_samples must be >= 1; got {_NUM.value}.")
  if not math.isfinite(_TEMP.value) or _TEMP.value <= 0:
    raise ValueError(f"--temperature must be a finite number > 0; got {_TEMP.value}.")
  if _SEED.value < 0:
    raise ValueError(f"--seed must be >= 0; got {_SEED.value}.")
  import gflow
  from gflow import data as gdata
  from gflow.train.trainer import load_run, sample_conditioning
  config, run = load_run(_WORKDIR.value)
  common.check_xla_cache(_XLA_CACHE.value, _WORKDIR.value)
  conditioning, length = (_given_conditioning(config) if (_WAV.value or _MEL.value)
                          else (None, None))
  model = gflow.load(_WORKDIR.value)
  ext = os.path.splitext(_OUT.value)[1]
  if ext and ext.lower() != model.outputs.extension:
    raise ValueError(f"--out={_OUT.value}: this model writes {model.outputs.extension} files; "
                     f"give a path ending in {model.outputs.extension} (or no extension).")
  n = _NUM.value
  if conditioning is not None:
    n = len(conditioning)
  elif run.get("conditional"):  # the conditioning of the first test examples
    conditioning = sample_conditioning(gdata.load(config.data), n)
    n = len(conditioning)
  if hasattr(model, "progress"):  # e.g. a score model's Langevin chain: a progress bar
    from gflow.score.langevin import TextProgress
    model.progress = TextProgress()
  from gflow.layers.shared_trace import shared_trace_scope
  start = time.perf_counter()
  # checkpoint layers of a kind run through one traced function each (DenseFlow-74-10:
  # 74 modules, 11 functions) instead of op by op
  with shared_trace_scope(bool(config.train.get("shared_traces", False))):
    samples = model.generate(n, seed=[_SEED.value, 0], temperature=_TEMP.value,
                             conditioning=conditioning)
  samples = samples.numpy()
  seconds = time.perf_counter() - start
  if length is not None:  # resynthesis: as long as the input (the frames cover it)
    samples = samples[:, :length]
  stem = os.path.splitext(_OUT.value)[0] if _OUT.value else os.path.join(
      _WORKDIR.value, "samples", f"sample_T{_TEMP.value:g}")
  paths = model.outputs.write(samples, stem)
  where = paths[0] if len(paths) == 1 else f"{len(paths)} files {paths[0]} …"
  speed = ""
  rate = getattr(model.outputs, "sample_rate", None)
  if rate:
    audio_seconds = samples.size / rate
    speed = f", {audio_seconds / seconds:.2f} × real time ({audio_seconds:.2f} s of audio)"
  evaluations = getattr(model, "network_evaluations", None)
  if evaluations:
    speed += f", {evaluations} network evaluations"
  print(f"wrote {where} ({len(samples)} samples at temperature {_TEMP.value:g}, "
        f"{seconds:.2f} s{speed})")
  return 0


def _given_conditioning(config):
  """([n, frames, bands] log-mel, length of --wav or None) from --wav (with the run's
  feature settings) or --mel."""
  import numpy as np
  import tensorflow as tf

  from gflow import data as gdata
  from gflow.data.mel import log_mel_spectrogram
  from gflow.io import read_wav
  if _WAV.value and _MEL.value:
    raise ValueError("pass --wav or --mel, not both.")
  mel_config = gdata.mel_config(config.data)
  if mel_config is None:
    raise ValueError("--wav and --mel need a run trained on mel spectrograms "
                     "(config.data.features='mel'); this run's data has no mel features.")
  if _WAV.value:
    wave, rate = read_wav(_WAV.value)
    if rate != mel_config.sample_rate:
      raise ValueError(f"{_WAV.value} is at {rate} Hz but the run's features are at "
                       f"{mel_config.sample_rate} Hz; resample it first.")
    return log_mel_spectrogram(tf.constant(wave[None]), mel_config), len(wave)
  if not os.path.isfile(_MEL.value):
    raise FileNotFoundError(f"No .npy file at {_MEL.value!r}.")
  mel = np.load(_MEL.value)
  if mel.ndim == 2:
    mel = mel[None]
  if mel.ndim != 3 or mel.shape[-1] != mel_config.n_mels:
    raise ValueError(f"{_MEL.value}: expected a log-mel spectrogram [frames, "
                     f"{mel_config.n_mels}] or [n, frames, {mel_config.n_mels}]; got shape "
                     f"{mel.shape}.")
  if not np.all(np.isfinite(mel)):
    raise ValueError(f"{_MEL.value}: holds NaN or Inf values.")
  return tf.constant(mel, tf.float32), None


def run():
  common.run_app(main)


if __name__ == "__main__":
  run()
