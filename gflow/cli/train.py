"""gflow-train: train a model from an ml_collections config file.

    gflow-train --config=configs/glow.py:digits --workdir=runs/digits \
        [--config.train.batch_size=32] [--strategy=mirrored]
    gflow-train --finetune_from=runs/digits --workdir=runs/digits_ft

Running the same command again resumes from the last checkpoint. With
`--finetune_from`, the config is the trained run's (saved in its workdir) and
training continues from its weights at the constant fine-tuning learning rate
(`train.finetune_learning_rate`, `train.finetune_steps`).
"""

import os
import sys

from absl import flags
from ml_collections import config_flags

from gflow.cli import common

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/glow.py:digits.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, summaries and samples go.")
_FINETUNE = flags.DEFINE_string("finetune_from", None,
                                "A trained workdir: fine-tune its model (no --config needed).")
_STRATEGY = flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                              "tf.distribute strategy.")
_XLA_CACHE = common.define_xla_cache_flag()
flags.mark_flags_as_required(["workdir"])


def main(argv):
  common.reject_extra_args(argv)
  common.check_xla_cache(_XLA_CACHE.value, _WORKDIR.value)
  from gflow.train import Trainer, TrainingDiverged, make_strategy
  import tensorflow as tf

  from gflow.train.interrupt import TrainingInterrupted
  from gflow.train.trainer import finetune_config, load_run
  config = _CONFIG.value
  if _FINETUNE.value:
    if config is not None:
      raise ValueError("--finetune_from takes the trained run's config; drop --config.")
    if os.path.realpath(_FINETUNE.value) == os.path.realpath(_WORKDIR.value):
      raise ValueError("--finetune_from and --workdir must differ: the fine-tuning run "
                       "keeps its own checkpoints.")
    config = finetune_config(load_run(_FINETUNE.value)[0])
  elif config is None:
    raise ValueError("--config is required (or --finetune_from=<trained workdir>).")
  strategy = make_strategy(_STRATEGY.value)
  trainer = Trainer(config, _WORKDIR.value, strategy, init_from=_FINETUNE.value)
  try:
    summary = trainer.train()
  except TrainingDiverged as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  except TrainingInterrupted as e:
    print(str(e), file=sys.stderr)
    return e.exit_code
  except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as e:
    if _STRATEGY.value == "multi_worker":
      last = tf.train.latest_checkpoint(os.path.join(_WORKDIR.value, "checkpoints"))
      print(f"error: a worker of the cluster stopped responding ({type(e).__name__}); this "
            f"worker stops too. Restart every worker with the same command to resume from "
            f"{last or 'the start (no checkpoint yet)'}.", file=sys.stderr)
      return 1
    raise
  if trainer.chief:
    from gflow.train.evaluation import format_baselines, format_figures
    units = trainer.model.figure_units
    for line in format_figures(summary, units) + format_baselines(
        trainer.data, units, trainer.config.seed + 2):
      print(line)
  return 0


def run():
  common.run_app(main)


if __name__ == "__main__":
  run()
