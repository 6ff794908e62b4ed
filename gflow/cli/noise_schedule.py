"""gflow-noise-schedule: NCSNv2's recommended noise levels and step size for a dataset.

    gflow-noise-schedule --config=configs/ncsnv2.py:digits --steps=5
    gflow-noise-schedule --config=configs/ncsnv2.py:cifar10 --config.data.data_dir=...

Prints σ₁ (technique 1: the exact largest pairwise distance of the training set,
pixels in [0, 1] as the score model sees them), L (technique 2: the overlap
criterion, `--overlap` C, default the released configs' 0.567) and ε (technique 4:
the variance-ratio criterion for T = `--steps`), each with the rule it applied, and
the flags that put them into a config. `--sigma_1` skips the data pass, and with
`--dim` no data is read at all (`--sigma_1=50 --dim=3072`: the paper's CIFAR-10).
"""

from absl import flags
from ml_collections import config_flags

from gflow.cli import common

_CONFIG = config_flags.DEFINE_config_file("config", None, "A score-model config file.")
_STEPS = flags.DEFINE_integer("steps", 0, "T, Langevin steps per level (0: the config's).",
                              lower_bound=0)
_OVERLAP = flags.DEFINE_float("overlap", 0.0, "Technique 2's target C (0: the config's).")
_SIGMA_L = flags.DEFINE_float("sigma_l", 0.0, "The smallest noise level (0: the config's).")
_SIGMA_1 = flags.DEFINE_float("sigma_1", 0.0, "Use this σ₁ instead of computing it (0: "
                              "compute it from the training set).")
_DIM = flags.DEFINE_integer("dim", 0, "The data dimension D (0: from the data); with "
                            "--sigma_1, no data is read.", lower_bound=0)
flags.mark_flag_as_required("config")


def main(argv):
  common.reject_extra_args(argv)
  import math

  from gflow import data as gdata
  from gflow.score import noise_levels as nl
  c = _CONFIG.value
  m = c.model
  steps = _STEPS.value or m.sampling.steps
  overlap = _OVERLAP.value or m.get("overlap", nl.DEFAULT_OVERLAP)
  sigma_l = _SIGMA_L.value or m.sigma_l
  if _SIGMA_1.value and _DIM.value:
    dim, sigma_1 = _DIM.value, nl.Choice(_SIGMA_1.value, "given (--sigma_1)")
    print(f"{c.data.name}: dimension D = {dim:,} (--dim)")
  else:
    source = gdata.load(c.data)
    dim = _DIM.value or math.prod(source.event_shape)
    print(f"{source.name}: {source.num_train:,} training examples of dimension D = {dim:,}")
    if _SIGMA_1.value:
      sigma_1 = nl.Choice(_SIGMA_1.value, "given (--sigma_1)")
    else:
      images = gdata.all_images(source, "train") / (c.data.num_levels - 1)
      sigma_1 = nl.max_pairwise_distance(images)
  num = nl.num_levels_for(sigma_1.value, sigma_l, dim, overlap)
  eps = nl.step_size_for(sigma_1.value, sigma_l, num.value, steps)
  print(f"sigma_1 = {sigma_1.value:.6g}  ({sigma_1.rule})")
  print(f"L = {num.value}  ({num.rule})")
  print(f"eps = {eps.value:g}  ({eps.rule})")
  print(f"flags: --config.model.sigma_1={sigma_1.value:.6g} --config.model.sigma_l={sigma_l:g} "
        f"--config.model.num_scales={num.value} --config.model.sampling.eps={eps.value:g} "
        f"--config.model.sampling.steps={steps}")
  return 0


def run():
  common.run_app(main)


if __name__ == "__main__":
  run()
