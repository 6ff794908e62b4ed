"""Whether `mixed_bfloat16` can be fast on the devices a run computes on.

bfloat16 halves memory traffic, but only hardware with bfloat16 arithmetic turns that
into speed: x86 CPUs with AVX512_BF16 or AMX, Arm CPUs with the BF16 extension, and
NVIDIA GPUs from compute capability 8.0 (Ampere). Elsewhere TensorFlow converts every
element to float32 and back around each operation. On an AVX2 CPU (AMD EPYC, Zen 3)
DenseFlow-74-10's training step at batch 8 took 99.1 s in `mixed_bfloat16` against
8.9 s in float32 (`benchmarks/README.md`, session 18). The trainer warns then; the run
goes on (the results are right, only slow).
"""

__all__ = ["cpu_has_bfloat16", "slow_bfloat16_warning"]

# /proc/cpuinfo flags of bfloat16 arithmetic: x86 ("flags") and Arm ("Features")
_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_has_bfloat16(cpuinfo="/proc/cpuinfo"):
  """True or False from the CPU's flags in `cpuinfo`; None when it cannot be read
  (not Linux)."""
  try:
    with open(cpuinfo) as f:
      text = f.read()
  except OSError:
    return None
  for line in text.splitlines():
    key, _, value = line.partition(":")
    if key.strip().lower() in ("flags", "features"):
      if _CPU_FLAGS.intersection(value.split()):
        return True
  return False


def _gpu_capabilities(devices):
  """Compute capabilities (major, minor) of the GPUs among `devices` (device names);
  None for a GPU TensorFlow gives no capability of."""
  import tensorflow as tf
  gpus = [d for d in devices if "GPU" in d.upper().rsplit("DEVICE:", 1)[-1]]
  physical = tf.config.list_physical_devices("GPU") if gpus else []
  capabilities = [tf.config.experimental.get_device_details(device).get("compute_capability")
                  for device in physical[:len(gpus)]]
  return [tuple(c) if c else None for c in capabilities] or [None] * len(gpus)


def slow_bfloat16_warning(policy, devices, cpuinfo="/proc/cpuinfo"):
  """A warning (str) when `policy` is mixed_bfloat16 and the run's `devices` (names,
  e.g. a strategy's worker devices) lack bfloat16 arithmetic; None otherwise (also
  when the hardware cannot be told)."""
  if policy != "mixed_bfloat16":
    return None
  names = [str(d) for d in devices] or ["/device:CPU:0"]
  if any("TPU" in d.upper() for d in names):
    return None
  capabilities = _gpu_capabilities(names)
  if capabilities:  # the run computes on GPUs: their capabilities, the CPU's flags aside
    slow = [c for c in capabilities if c is not None and c < (8, 0)]
    if not slow:
      return None
    where = (f"GPUs of compute capability {'.'.join(map(str, slow[0]))} (bfloat16 "
             "arithmetic needs 8.0, Ampere, or later)")
  else:
    if cpu_has_bfloat16(cpuinfo) is not False:
      return None
    where = ("this CPU, which has no bfloat16 arithmetic (AVX512_BF16 or AMX on x86, "
             "BF16 on Arm)")
  return (f"warning: model.network_dtype='mixed_bfloat16' on {where}: every operation "
          "converts to float32 and back, and a step can take several times as long as in "
          "float32 (DenseFlow-74-10: 11x on an AVX2 CPU). Use --config.model.network_dtype="
          "float32 here.")
