"""gflow-sample: a PNG grid of samples from a trained run.

    gflow-sample --workdir=runs/digits --num_samples=64 --temperature=0.8 --out=samples.png
"""

import os

from absl import flags

from gflow.cli import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A gflow-train workdir.")
_NUM = flags.DEFINE_integer("num_samples", 64, "How many samples.")
_TEMP = flags.DEFINE_float("temperature", 1.0, "Scale of the prior's standard deviation.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_OUT = flags.DEFINE_string("out", "", "PNG path (default: <workdir>/samples/sample_T<temp>.png).")
flags.mark_flag_as_required("workdir")


def main(argv):
  common.reject_extra_args(argv)
  if _NUM.value < 1:
    raise ValueError(f"--num_samples must be >= 1; got {_NUM.value}.")
  if _TEMP.value <= 0:
    raise ValueError(f"--temperature must be > 0; got {_TEMP.value}.")
  import gflow
  from gflow.io.images import save_png
  model = gflow.load(_WORKDIR.value)
  v = model.sample(_NUM.value, seed=_SEED.value, temperature=_TEMP.value)
  images = model.quantize(v).numpy()
  out = _OUT.value or os.path.join(_WORKDIR.value, "samples",
                                   f"sample_T{_TEMP.value:g}.png")
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  save_png(out, images, upscale=max(1, 64 // images.shape[1]))
  print(f"wrote {out} ({len(images)} samples at temperature {_TEMP.value:g})")
  return 0


def run():
  common.run_app(main)


if __name__ == "__main__":
  run()
