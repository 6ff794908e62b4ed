"""DenseFlow configs (Grcić et al. 2021).

    gflow-train --config=configs/denseflow.py:digits --workdir=runs/denseflow_digits
    gflow-train --config=configs/denseflow.py:cifar10 --workdir=runs/df_74_10_cifar10
    gflow-eval --workdir=runs/df_74_10_cifar10 --num_importance_samples=1000
    gflow-train --finetune_from=runs/df_74_10_cifar10 --workdir=runs/df_74_10_cifar10_ft

`digits` is the embedded default (scikit-learn's 8x8 digits, no download), a
small DenseFlow that trains in minutes on 2 CPU cores. `cifar10`, `imagenet32`,
`imagenet64` and `celeba` are DenseFlow-74-10 with the paper's training
details (Appendix C); `cifar10_45_6` is DenseFlow-45-6, the ablation model of
Table 4, whose switches are `model.augment`, `model.preconditioned`,
`model.coupling`, `model.noise_context` and `model.attention`.
"""

import ml_collections
from ml_collections import config_dict

from gflow.choices import check_choice

ARGS = ("digits", "cifar10", "cifar10_45_6", "imagenet32", "imagenet64", "celeba")

# Training-set sizes, for epochs → steps (the learning rate decays once per epoch).
TRAIN_IMAGES = {"digits": 1438, "cifar10": 50_000, "downsampled_imagenet/32x32": 1_281_149,
                "downsampled_imagenet/64x64": 1_281_149, "celeb_a": 162_770}


def get_config(arg="digits"):
  if arg not in ARGS:
    check_choice(arg, ARGS, "denseflow config")
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = "digits"
  c.data.data_dir = ""      # tfds data_dir (prepared datasets when offline)
  c.data.path = ""          # name="folder": a folder of images; name="npz": the file
  c.data.image_size = 0     # resize/crop to this size (0 = keep)
  c.data.channels = 3       # for name="folder": 1 (grey) or 3 (RGB)
  c.data.num_levels = 256

  c.model = ml_collections.ConfigDict()
  c.model.name = "denseflow"
  # DenseFlow-L-k: block b has units[b] units of modules[b] glow-like modules;
  # L = Σ units·modules, k = growth (noise channels added between units).
  c.model.units = (3, 1)
  c.model.modules = (2, 4)
  c.model.growth = 4
  # Intra-unit coupling network: 1x1 projection to `width`, dense block
  # (`dense_depth` layers of `dense_growth` maps) ‖ Nyström attention.
  c.model.coupling = "dense"          # "dense" (DenseFlow) or "glow" (Glow's CNN)
  c.model.width = 32
  c.model.dense_depth = 3
  c.model.dense_growth = 32
  c.model.attention = True
  c.model.embed_dim = 16
  c.model.num_landmarks = 4
  c.model.pinv_iterations = 6
  # BatchNorm in the coupling networks: 0 normalises by the global batch (synchronized
  # across replicas, which then run without XLA and shared traces); v > 0 by each run
  # of v examples ("ghost" batches, not synchronized: several replicas keep XLA and
  # compute what one replica does; v must divide each replica's batch).
  c.model.virtual_batch_size = 0
  c.model.glow_width = 64             # for coupling="glow"
  # Invertible 1x1 convolutions (modules and dequantizer): a dense C x C kernel, as the
  # authors' code (log-det by slogdet), or Glow's LU parameterisation (log-det O(C)).
  c.model.lu = False
  # Cross-unit coupling (Table 4 ablations).
  c.model.augment = True              # latent augmentation on/off
  c.model.preconditioned = True       # noise μ + σ e from g(z_<i), or white noise
  c.model.noise_context = "all"       # g over all earlier representations, or "last"
  c.model.dequantization = "variational"  # or "uniform"
  c.model.dequantizer = ml_collections.ConfigDict()
  c.model.dequantizer.steps = 2
  c.model.dequantizer.context_channels = 16
  c.model.dequantizer.width = 16
  c.model.dequantizer.depth = 2
  c.model.dequantizer.growth = 16
  c.model.num_levels = c.data.get_ref("num_levels")
  c.model.network_dtype = ""  # "", "mixed_bfloat16" or "mixed_float16"
  # NanoFlow's parameter sharing of the coupling networks (gflow.nets.sharing):
  c.model.sharing = "none"            # none | naive | decomp | nanoflow
  c.model.share_across = "level"      # a group per block, or "model"
  c.model.flow_embedding = "bias,gate"  # nanoflow: any of input, bias, gate
  c.model.flow_embedding_size = 8
  c.model.projection = "1x1"          # decomp/nanoflow per-flow head: "1x1" or "3x3"
  # Each unit holds its modules' variables stacked, one variable per kind with a module
  # axis (gflow.layers.StackedFlow): the same model and results, DenseFlow-74-10's 3,645
  # variables become 684 and the first step comes sooner. Not with model.sharing (the
  # modules share networks) or parts.split="across_blocks" (it cuts inside units).
  c.model.stack_modules = True

  # Training in gradient-isolated parts (gflow.flows.parts); off while split is "".
  # A block is a level; its steps are the modules of its units, numbered across units.
  c.parts = ml_collections.ConfigDict()
  c.parts.split = ""                # "", "by_block" or "across_blocks"
  c.parts.boundaries = "1"         # by_block: after blocks ("1", "1,2"); across: "1:3", …
  c.parts.schedule = "alternating"  # sequential | alternating | simultaneous
  c.parts.learning_rates = ""       # one per part, e.g. "1e-3,5e-4" ("": train.learning_rate)
  c.parts.steps_per_part = 0        # sequential: steps of each part (0: an equal share)
  c.parts.turn_steps = 0            # alternating: steps per turn (0: one epoch)
  c.parts.end_to_end_steps = 0      # then train end to end for this many steps
  c.parts.devices = ""              # one device per part, e.g. "/GPU:0,/GPU:1" ("": default)

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64
  c.train.num_epochs = 100
  c.train.optimizer = "adamax"
  c.train.learning_rate = 2e-3
  c.train.warmup_steps = 200
  c.train.decay_rate = 0.98           # per epoch, after the warm-up
  c.train.decay_staircase = True      # decay once per epoch, as the paper does
  c.train.finetune_learning_rate = 2e-5
  c.train.finetune_epochs = 10
  c.train.grad_clip_norm = 50.0
  c.train.ema_decay = 0.999
  c.train.init_batch_size = 256
  # XLA: unset compiles on GPUs only; on a CPU the graph step was as fast and started
  # sooner (gflow.train.xla_choice). True or False decides for every device.
  c.train.jit_compile = config_dict.placeholder(bool)
  # What XLA compiles as one program: "step" (the whole training step) or "modules"
  # (each shared glow-like module trace, forward and backward; the step around them
  # runs as a graph, so remat keeps its savings: XLA:CPU drops recomputation barriers
  # inside one program). "modules" needs shared_traces.
  c.train.jit_scope = "step"
  # Gradient checkpointing: each glow-like module keeps its input only and is recomputed
  # in the backward pass (less memory, one more forward pass; the same loss and gradients).
  c.train.remat = False
  # Trace each distinct glow-like module once and call that trace for every module like
  # it (74 modules in 11 shapes for DenseFlow-74-10): shorter start-up, the same results.
  c.train.shared_traces = True
  # Grappler's passes for the step's own graph: "auto" (light around shared traces: the
  # first step ~8 s sooner for 74-10, the same steps), "full" or "light".
  c.train.step_graph = "auto"
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  c.train.eval_every = 1000
  c.train.sample_every = 1000
  c.train.keep_checkpoints = 3

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 256
  c.eval.num_samples = 64
  c.eval.temperature = 1.0
  c.eval.num_importance_samples = 100  # gflow-eval's default K
  c.eval.importance_chunk = 50         # K draws evaluated together

  if arg != "digits":
    _paper(c, arg)
  # Derived: the learning rate decays once per epoch of the training set. These are
  # references, so overrides of the batch size or epochs (and of data.num_train, which
  # the trainer checks against the data) flow into them.
  c.data.num_train = TRAIN_IMAGES[c.data.name]
  steps_per_epoch = c.data.get_ref("num_train") // c.train.get_ref("batch_size")
  c.train.decay_steps = steps_per_epoch
  c.train.num_steps = c.train.get_ref("num_epochs") * steps_per_epoch
  c.train.finetune_steps = c.train.get_ref("finetune_epochs") * steps_per_epoch
  return c


def _paper(c, arg):
  """DenseFlow-74-10 (or 45-6) with the paper's Appendix C training details."""
  m, t = c.model, c.train
  if arg == "cifar10_45_6":
    m.units, m.modules, m.growth = (5, 3, 1), (3, 5, 15), 6
  else:
    m.units, m.modules, m.growth = (6, 4, 1), (5, 6, 20), 10
  m.width, m.dense_depth, m.dense_growth = 48, 7, 64
  m.embed_dim, m.num_landmarks = 24, 4
  d = m.dequantizer
  d.steps, d.context_channels, d.width, d.depth, d.growth = 4, 64, 64, 4, 64
  t.learning_rate = 1e-3
  t.warmup_steps = 5000
  t.grad_clip_norm = 0.0
  t.ema_decay = 0.0
  # XLA (on GPUs, or with train.jit_compile=True) per module: the whole 74-10 step took
  # 16 min to compile and 14.5 GiB at batch 8 on a 2-core CPU; per module 2 min and
  # 4.5 GiB (benchmarks/README.md, issue 14)
  t.jit_scope = "modules"
  t.init_batch_size = 256
  t.log_every, t.checkpoint_every, t.eval_every, t.sample_every = 100, 2000, 20_000, 10_000
  c.eval.batch_size = 64
  c.eval.num_importance_samples = 200
  c.eval.importance_chunk = 50
  if arg in ("cifar10", "cifar10_45_6"):
    c.data.name = "cifar10"
    t.num_epochs, t.finetune_epochs, t.decay_rate = 580, 70, 0.9975
    c.eval.num_importance_samples = 1000
    if arg == "cifar10_45_6":  # Table 4: 300 epochs, then 10 of fine-tuning
      t.num_epochs, t.finetune_epochs = 300, 10
  elif arg == "imagenet32":
    c.data.name = "downsampled_imagenet/32x32"
    t.num_epochs, t.finetune_epochs, t.decay_rate = 20, 2, 0.95
  elif arg == "imagenet64":
    c.data.name = "downsampled_imagenet/64x64"
    t.batch_size = 32
    t.num_epochs, t.finetune_epochs, t.decay_rate = 10, 1, 0.95
    c.eval.importance_chunk = 25
  elif arg == "celeba":
    c.data.name = "celeb_a"
    c.data.image_size = 64
    t.batch_size = 32
    t.num_epochs, t.finetune_epochs, t.decay_rate = 50, 5, 0.95
    c.eval.importance_chunk = 25
    c.eval.temperature = 0.8
