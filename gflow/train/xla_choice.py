"""Whether a training run compiles its step with XLA (`train.jit_compile`).

    True / False → as given
    None (unset, the Glow and DenseFlow configs' default) → XLA when the run computes on a GPU

On GPUs XLA fuses a step's elementwise work around cuDNN's convolutions. On a CPU
gflow's graph step, whose convolutions are differentiated by forward convolutions
(`gflow.nets.Conv2D`; inside XLA they are TensorFlow's), started far sooner and ran
about as fast on a 2-core AVX2 CPU (benchmarks/README.md, session 20): Glow on the
digits at 31 steps/s against 33 compiled, its first step after 6.6 s against 77 s (a
3000-step run ends a minute sooner); DenseFlow-74-10 at batch 8 at 6.8–7.7 s/step
against 8.3–10.3 s with XLA per module, its first step after ~60 s against 115–131 s.
"""

import tensorflow as tf

__all__ = ["jit_compile_for", "describe"]


def _on_gpu(devices):
  return any(tf.DeviceSpec.from_string(d).device_type == "GPU" for d in devices)


def jit_compile_for(value, devices):
  """`train.jit_compile` (True, False or None: unset) for a run computing on `devices`
  (device names) → whether XLA compiles its step."""
  if value is None:
    return _on_gpu(devices)
  if not isinstance(value, bool):
    raise TypeError(f"config.train.jit_compile must be true, false or unset (XLA on GPUs "
                    f"only); got {value!r}.")
  return value


def describe(value, devices):
  """One line for the run's log when `train.jit_compile` is unset; None otherwise."""
  if value is not None:
    return None
  if _on_gpu(devices):
    return "XLA compiles the training step (train.jit_compile unset: on for GPUs)."
  return ("XLA is off: train.jit_compile is unset and this run computes on CPUs, where the "
          "graph step starts far sooner and runs about as fast "
          "(--config.train.jit_compile=true compiles it).")
