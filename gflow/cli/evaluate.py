"""gflow-eval: a trained run's evaluation figures on its test set, from its last checkpoint.

    gflow-eval --workdir=runs/digits
    gflow-eval --workdir=runs/denseflow_digits --num_importance_samples=1000

Prints each figure the model reports (image flows: `test bits/dim`, audio
models: `test log-likelihood` in nats/sample) as mean ± standard error over the
test items, then the data's baselines (audio: a Gaussian fitted to the training
audio, scored on the same clips). `--num_importance_samples=K` asks for a
Monte Carlo estimate over K samples per item (for models whose likelihood is a
bound: the importance-weighted estimate over K joint draws of all noise).
"""

from absl import flags

from gflow.cli import common

_WORKDIR = flags.DEFINE_string("workdir", None, "A gflow-train workdir.")
_BATCH = flags.DEFINE_integer(
    "batch_size", 0, "Evaluation batch (0: the run's eval.batch_size, divided by the chunk "
    "when K > 1).", lower_bound=0)
_EMA = flags.DEFINE_bool("ema", True, "Use the EMA weights when the run kept them.")
_K = flags.DEFINE_integer("num_importance_samples", 1,
                          "K samples per test item (models with noise only).", lower_bound=1)
_CHUNK = flags.DEFINE_integer(
    "importance_chunk", 0, "Samples evaluated together (0: the run's eval.importance_chunk).",
    lower_bound=0)
_BASELINES = flags.DEFINE_bool(
    "baselines", True, "Also print the data's reference figures (audio: an i.i.d. Gaussian "
    "fitted to the training audio), for comparison.")
_LIMIT = flags.DEFINE_integer("num_images", 0, "Evaluate the first N test items only (0: all).",
                              lower_bound=0)
flags.mark_flag_as_required("workdir")


def main(argv):
  common.reject_extra_args(argv)
  import gflow
  from gflow import data as gdata
  from gflow.train import evaluation
  from gflow.train.trainer import load_run
  k = _K.value
  if k < 1:
    raise ValueError(f"--num_importance_samples must be >= 1; got {k}.")
  config, _ = load_run(_WORKDIR.value)
  model = gflow.load(_WORKDIR.value, use_ema=_EMA.value)
  chunk = _CHUNK.value or config.eval.get("importance_chunk") or k
  batch = _BATCH.value or max(1, config.eval.batch_size // min(chunk, k))
  source = gdata.load(config.data)
  dataset = source.eval_dataset(batch, seed=config.seed + 2, limit=_LIMIT.value)
  figures = evaluation.evaluate(model, dataset, config.seed + 4, k, chunk)
  summary = evaluation.summarize(figures)
  print(f"test items: {len(next(iter(figures.values())))}")
  if k > 1:
    print(f"importance samples: {k}")
  for line in evaluation.format_figures(summary, model.figure_units):
    print(line)
  if _BASELINES.value:
    for line in evaluation.format_baselines(source, model.figure_units, config.seed + 2,
                                            _LIMIT.value):
      print(line)
  return 0


def run():
  common.run_app(main)


if __name__ == "__main__":
  run()
