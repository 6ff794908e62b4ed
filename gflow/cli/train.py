"""gflow-train: train a model from an ml_collections config file.

    gflow-train --config=configs/glow.py:digits --workdir=runs/digits \
        [--config.train.batch_size=32] [--strategy=mirrored]

Running the same command again resumes from the last checkpoint.
"""

import sys

from absl import flags
from ml_collections import config_flags

from gflow.cli import common

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/glow.py:digits.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, summaries and samples go.")
_STRATEGY = flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                              "tf.distribute strategy.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  common.reject_extra_args(argv)
  from gflow.train import Trainer, TrainingDiverged, make_strategy
  strategy = make_strategy(_STRATEGY.value)
  trainer = Trainer(_CONFIG.value, _WORKDIR.value, strategy)
  try:
    bpd = trainer.train()
  except TrainingDiverged as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  if trainer.chief:
    print(f"test bits/dim: {bpd:.4f}")
  return 0


def run():
  common.run_app(main)


if __name__ == "__main__":
  run()
