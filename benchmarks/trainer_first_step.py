"""gflow-train's step, timed in one process: the Trainer's construction, the
data-dependent init, the first step (tracing, and XLA's compilation with
`--config.train.jit_compile=true`), the steps after it, and the peak resident set.

Unlike `denseflow_step.py` (the model's loss and the optimizer alone), this is the
trainer's whole step: the NaN/Inf check, gradient clipping, the EMA, the distributed
wrapper. The data are random images in an .npz (made if missing); nothing is written
but the workdir given.

    python benchmarks/trainer_first_step.py --config=configs/denseflow.py:cifar10 \\
        --config.train.jit_compile=true --config.train.remat=true --steps=3

Output: one line per phase (seconds since launch, the resident set's peak so far),
then the median of the timed steps and the losses.
"""

import os
import resource
import shutil
import sys
import tempfile
import time

LAUNCHED = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _mark(what):
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  print(f"{time.perf_counter() - LAUNCHED:8.1f} s  peak {peak:5.2f} GiB  {what}", flush=True)


def main(argv):
  del argv
  import numpy as np

  from gflow.malloc_arenas import cap_malloc_arenas
  from gflow.train import trainer as trainer_lib
  from gflow.xla_cpu_flags import set_xla_cpu_defaults
  cap_malloc_arenas()  # as gflow's binaries
  set_xla_cpu_defaults()  # as gflow's binaries (XLA_FLAGS given to the run win)
  config = _CONFIG.value  # locked: fields are set, none added
  data = os.path.join(tempfile.gettempdir(), "gflow_bench_rand32.npz")
  if not os.path.exists(data):
    rng = np.random.default_rng(0)
    np.savez(data, train=rng.integers(0, 256, (512, 32, 32, 3), np.uint8),
             test=rng.integers(0, 256, (64, 32, 32, 3), np.uint8))
  config.data.name, config.data.path = "npz", data
  config.data.num_train = 512  # the per-epoch schedule follows the file's size
  config.train.num_steps = _STEPS.value + 1
  _mark("imports")
  workdir = _WORKDIR.value or tempfile.mkdtemp(prefix="gflow_bench_")
  shutil.rmtree(workdir, ignore_errors=True)
  trainer = trainer_lib.Trainer(config, workdir, verbose=False)
  _mark("trainer built (data, model, optimizer)")
  trainer.restore()
  trainer.initialize()
  _mark("data-dependent init")
  step = trainer._make_train_step()
  iterator = iter(trainer._dataset(trainer.global_batch, 0))
  losses = [float(step(iterator)[0])]
  _mark(f"first step (tracing{', XLA compiling' if trainer.jit_compile else ''})")
  times = []
  for _ in range(_STEPS.value):
    t0 = time.perf_counter()
    losses.append(float(step(iterator)[0]))
    times.append(time.perf_counter() - t0)
  _mark(f"{_STEPS.value} more steps")
  print(f"median step {sorted(times)[len(times) // 2]:.2f} s; losses "
        + ", ".join(f"{l:.4f}" for l in losses))
  if not _WORKDIR.value:
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
  from absl import app, flags
  from ml_collections import config_flags
  _CONFIG = config_flags.DEFINE_config_file("config", None, "A gflow config file.")
  _STEPS = flags.DEFINE_integer("steps", 3, "Steps timed after the first.")
  _WORKDIR = flags.DEFINE_string("workdir", "", "Workdir (default: a temporary one).")
  flags.mark_flag_as_required("config")
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
  app.run(main)
