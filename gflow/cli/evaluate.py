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
  import tensorflow as tf

  import gflow
  from gflow import data as gdata
  from gflow.train.trainer import eval_bits_per_dim, load_run
  config, _ = load_run(_WORKDIR.value)
  model = gflow.load(_WORKDIR.value, use_ema=_EMA.value)
  values = eval_bits_per_dim(tf.function(model.bits_per_dim), gdata.load(config.data).test,
                             config, batch_size=_BATCH.value or None)
  print(f"test images: {len(values)}")
  print(f"test bits/dim: {values.mean():.4f}")
  return 0


def run():
  common.run_app(main)


if __name__ == "__main__":
  run()
