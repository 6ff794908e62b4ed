"""Trains a config under a strategy and saves, to an .npz, the weights right after the
data-dependent init (`initial/<key>`, trainable ones) and every value of the final checkpoint
(weights, optimizer slots, EMA, step); with `parts.devices`, each trainable variable's
device to <out>.devices.json.

    python -m tests.helpers.train_worker --workdir=D --out=W.npz --strategy=S \
        [--logical_cpus=2] [--steps=N] [--config.xxx=...]

Used by the distributed tests: each run is its own process because logical
devices must be configured before TensorFlow starts.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file")
_WORKDIR = flags.DEFINE_string("workdir", None, "")
_OUT = flags.DEFINE_string("out", None, "")
_STRATEGY = flags.DEFINE_string("strategy", "default", "")
_CPUS = flags.DEFINE_integer("logical_cpus", 1, "")


def main(argv):
  import numpy as np
  import tensorflow as tf
  if _CPUS.value > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * _CPUS.value)
  import os

  from gflow.train import Trainer, make_strategy
  from gflow.train.trainer import trainable_keyed
  strategy = make_strategy(_STRATEGY.value)
  trainer = Trainer(_CONFIG.value, _WORKDIR.value, strategy, verbose=False)
  trainer.initialize()
  initial = {f"initial/{k}": np.asarray(v.numpy())
             for k, v in trainable_keyed(trainer.model).items()}
  trainer.train()
  if trainer.chief:
    reader = tf.train.load_checkpoint(os.path.join(_WORKDIR.value, "checkpoints"))
    final = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
             if not k.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}
    compiled = getattr(trainer, "_xla", False) or getattr(trainer, "_xla_modules", False)
    np.savez(_OUT.value, replicas=strategy.num_replicas_in_sync, xla=int(compiled),
             **initial, **final)
    if trainer.config.get("parts") and trainer.config.parts.get("devices"):
      import json
      with open(_OUT.value + ".devices.json", "w") as f:  # where each variable lives
        json.dump({k: v.value.device for k, v in trainable_keyed(trainer.model).items()}, f)
  return 0


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir", "out"])
  app.run(main)
