"""gflow-eval: test bits/dim of a trained run, from its last checkpoint.

    gflow-eval --workdir=runs/digits
    gflow-eval --workdir=runs/denseflow_digits --num_importance_samples=1000

For models with noise (DenseFlow's augmentation, variational dequantization),
`--num_importance_samples=K` gives the importance-weighted estimate over K
joint draws of all noise, with its standard error over the test images.
"""

from absl import flags

from gflow.cli import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A gflow-train workdir.")
_BATCH = flags.DEFINE_integer("batch_size", 0, "Evaluation batch (0: the run's eval.batch_size, "
                              "divided by the chunk when K > 1).")
_EMA = flags.DEFINE_bool("ema", True, "Use the EMA weights when the run kept them.")
_K = flags.DEFINE_integer("num_importance_samples", 1,
                          "K joint noise samples per image (models with noise only).")
_CHUNK = flags.DEFINE_integer("importance_chunk", 0,
                              "Samples evaluated together (0: the run's eval.importance_chunk).")
_LIMIT = flags.DEFINE_integer("num_images", 0, "Evaluate the first N test images only (0: all).")
flags.mark_flag_as_required("workdir")


def main(argv):
  common.reject_extra_args(argv)
  import tensorflow as tf

  import gflow
  from gflow import data as gdata
  from gflow.train.trainer import eval_bits_per_dim, importance_weighted_bits_per_dim, load_run
  if _K.value < 1:
    raise ValueError(f"--num_importance_samples must be >= 1; got {_K.value}.")
  config, _ = load_run(_WORKDIR.value)
  model = gflow.load(_WORKDIR.value, use_ema=_EMA.value)
  test = gdata.load(config.data).test
  if _LIMIT.value:
    test = test[:_LIMIT.value]
  if _K.value == 1:
    values = eval_bits_per_dim(tf.function(model.bits_per_dim), test, config,
                               batch_size=_BATCH.value or None)
  else:
    values = importance_weighted_bits_per_dim(
        model, test, config, _K.value, chunk_size=_CHUNK.value or None,
        batch_size=_BATCH.value or None)
  stderr = values.std(ddof=1) / len(values) ** 0.5 if len(values) > 1 else float("nan")
  print(f"test images: {len(values)}")
  if _K.value > 1:
    print(f"importance samples: {_K.value}")
  print(f"test bits/dim: {values.mean():.4f}")
  print(f"standard error: {stderr:.4f} (over the test images)")
  return 0


def run():
  common.run_app(main)


if __name__ == "__main__":
  run()
