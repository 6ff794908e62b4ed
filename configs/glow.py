"""Glow configs.

    gflow-train --config=configs/glow.py:digits --workdir=runs/glow_digits
    gflow-train --config=configs/glow.py:cifar10 --workdir=runs/glow_cifar10

`digits` is the embedded default (scikit-learn's 8x8 digits, no download) and
trains in a few minutes on 2 CPU cores; `cifar10` is openai/glow's setting
(3 levels × 32 steps, width 512, affine coupling, Adamax 1e-3 with warm-up).
"""

import ml_collections
from ml_collections import config_dict

from gflow.choices import check_choice

ARGS = ("digits", "cifar10")


def get_config(arg="digits"):
  if arg not in ARGS:
    check_choice(arg, ARGS, "glow config")
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = "digits"
  c.data.data_dir = ""      # tfds data_dir (prepared datasets when offline)
  c.data.path = ""          # name="folder": a folder of images; name="npz": the file
  c.data.image_size = 0     # for name="folder": resize/crop to this size (0 = keep)
  c.data.channels = 3       # for name="folder": 1 (grey) or 3 (RGB)
  c.data.num_levels = 256

  c.model = ml_collections.ConfigDict()
  c.model.name = "glow"
  c.model.levels = 2
  c.model.steps = 8
  c.model.width = 64
  c.model.coupling = "affine"
  c.model.scale_fn = "sigmoid"
  c.model.lu = True
  c.model.learn_top = True
  c.model.split_prior = True
  c.model.num_levels = c.data.get_ref("num_levels")
  c.model.network_dtype = ""  # "", "mixed_bfloat16" or "mixed_float16"
  # NanoFlow's parameter sharing of the coupling networks (gflow.nets.sharing):
  c.model.sharing = "none"            # none | naive | decomp | nanoflow
  c.model.share_across = "level"      # a group per multi-scale level, or "model"
  c.model.flow_embedding = "input,gate"  # nanoflow: any of input, bias, gate
  c.model.flow_embedding_size = 4
  c.model.projection = "1x1"          # decomp/nanoflow per-flow head: "1x1" or "3x3"

  # Training in gradient-isolated parts (gflow.flows.parts); off while split is "".
  c.parts = ml_collections.ConfigDict()
  c.parts.split = ""                # "", "by_block" or "across_blocks"
  c.parts.boundaries = "1"         # by_block: after levels ("1", "1,2"); across: "1:19", …
  c.parts.schedule = "alternating"  # sequential | alternating | simultaneous
  c.parts.learning_rates = ""       # one per part, e.g. "1e-3,5e-4" ("": train.learning_rate)
  c.parts.steps_per_part = 0        # sequential: steps of each part (0: an equal share)
  c.parts.turn_steps = 0            # alternating: steps per turn (0: one epoch)
  c.parts.end_to_end_steps = 0      # then train end to end for this many steps
  c.parts.devices = ""              # one device per part, e.g. "/GPU:0,/GPU:1" ("": default)

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64
  c.train.num_steps = 3000          # ~130 epochs of the 1,438 training digits
  c.train.optimizer = "adamax"
  c.train.learning_rate = 2e-3
  c.train.warmup_steps = 200
  c.train.decay_rate = 0.5          # multiplied in every `decay_steps` after warm-up
  c.train.decay_steps = 1000
  c.train.grad_clip_norm = 50.0     # 0 = off
  c.train.ema_decay = 0.999         # 0 = off; evaluation and samples use the average
  c.train.init_batch_size = 512     # ActNorm's data-dependent init batch
  # XLA: unset compiles on GPUs only; on a CPU the digits trained at 31 steps/s without
  # it (33 with) and started 70 s sooner (gflow.train.xla_choice).
  c.train.jit_compile = config_dict.placeholder(bool)
  c.train.remat = False             # recompute each step of flow in the backward pass
  c.train.shared_traces = False     # trace each distinct step of flow once (same results)
  c.train.step_graph = "auto"       # Grappler on the step's graph: auto, full or light
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  c.train.eval_every = 1000
  c.train.sample_every = 1000
  c.train.keep_checkpoints = 3

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 256
  c.eval.num_samples = 64
  c.eval.temperature = 1.0

  if arg == "cifar10":
    c.data.name = "cifar10"
    c.model.levels = 3
    c.model.steps = 32
    c.model.width = 512
    c.train.batch_size = 64
    c.train.num_steps = 1_000_000
    c.train.learning_rate = 1e-3
    # openai/glow warms the learning rate up linearly over 10 epochs of 50k images
    # (a reference: it follows --config.train.batch_size).
    c.data.num_train = 50_000
    c.train.warmup_steps = 10 * c.data.get_ref("num_train") // c.train.get_ref("batch_size")
    c.train.init_batch_size = 256
    c.train.decay_rate = 1.0
    c.train.ema_decay = 0.0  # openai/glow keeps no average
    c.train.log_every = 100
    c.train.checkpoint_every = 2000
    c.train.eval_every = 10000
    c.train.sample_every = 5000
    c.eval.temperature = 0.7
  return c
