"""gflow-sample: samples from a trained run, written as the model writes them (PNG grid, WAV).

    gflow-sample --workdir=runs/digits --num_samples=64 --temperature=0.8 --out=samples.png
"""

import os
import time

from absl import flags

from gflow.cli import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A gflow-train workdir.")
_NUM = flags.DEFINE_integer("num_samples", 64, "How many samples.")
_TEMP = flags.DEFINE_float("temperature", 1.0, "Scale of the prior's standard deviation.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_OUT = flags.DEFINE_string("out", "", "Output path; its extension is the writer's "
                           "(default: <workdir>/samples/sample_T<temp>).")
flags.mark_flag_as_required("workdir")


def main(argv):
  common.reject_extra_args(argv)
  if _NUM.value < 1:
    raise ValueError(f"--num_samples must be >= 1; got {_NUM.value}.")
  if _TEMP.value <= 0:
    raise ValueError(f"--temperature must be > 0; got {_TEMP.value}.")
  import gflow
  from gflow import data as gdata
  from gflow.train.trainer import load_run, sample_conditioning
  config, run = load_run(_WORKDIR.value)
  model = gflow.load(_WORKDIR.value)
  conditioning, n = None, _NUM.value
  if run.get("conditional"):  # the conditioning of the first test examples
    conditioning = sample_conditioning(gdata.load(config.data), n)
    n = len(conditioning)
  start = time.perf_counter()
  samples = model.generate(n, seed=[_SEED.value, 0], temperature=_TEMP.value,
                           conditioning=conditioning)
  samples = samples.numpy()
  seconds = time.perf_counter() - start
  stem = os.path.splitext(_OUT.value)[0] if _OUT.value else os.path.join(
      _WORKDIR.value, "samples", f"sample_T{_TEMP.value:g}")
  paths = model.outputs.write(samples, stem)
  where = paths[0] if len(paths) == 1 else f"{len(paths)} files {paths[0]} …"
  print(f"wrote {where} ({len(samples)} samples at temperature {_TEMP.value:g}, "
        f"{seconds:.2f} s)")
  return 0


def run():
  common.run_app(main)


if __name__ == "__main__":
  run()
