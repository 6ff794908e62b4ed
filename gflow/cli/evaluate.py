"""gflow-eval: test bits/dim of a trained run, from its last checkpoint.

    gflow-eval --workdir=runs/digits
"""

from absl import flags

from gflow.cli import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A gflow-train workdir.")
_BATCH = flags.DEFINE_integer("batch_size", 0, "Evaluation batch (0: the run's eval.batch_size).")
_EMA = flags.DEFINE_bool("ema", True, "Use the EMA weights when the run kept them.")
flags.mark_flag_as_required("workdir")


def main(argv):
  common.reject_extra_args(argv)
  import numpy as np

  import gflow
  from gflow import data as gdata
  from gflow.train import load_run
  config, _ = load_run(_WORKDIR.value)
  model = gflow.load(_WORKDIR.value, use_ema=_EMA.value)
  test = gdata.load(config.data).test
  # The noise seed matches the trainer's evaluation, so both print the same figure.
  ds = gdata.eval_dataset(test, _BATCH.value or config.eval.batch_size, seed=config.seed + 2)
  import tensorflow as tf
  bpd = tf.function(model.bits_per_dim)
  values = np.concatenate([bpd(x).numpy() for x in ds])
  print(f"test images: {len(values)}")
  print(f"test bits/dim: {values.mean():.4f}")
  return 0


def run():
  common.run_app(main)


if __name__ == "__main__":
  run()
