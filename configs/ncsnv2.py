"""NCSNv2 configs (Song & Ermon, "Improved Techniques for Training Score-Based Generative
Models", 2020).

    gflow-train --config=configs/ncsnv2.py:digits --workdir=runs/ncsnv2_digits
    gflow-sample --workdir=runs/ncsnv2_digits --num_samples=64
    gflow-eval --workdir=runs/ncsnv2_digits
    gflow-train --config=configs/ncsnv2.py:cifar10 --workdir=runs/ncsnv2_cifar10
    gflow-noise-schedule --config=configs/ncsnv2.py:digits --steps=5

`digits` is the embedded default (scikit-learn's 8x8 digits, no download), small
enough to train and sample in minutes on 2 CPU cores. `cifar10` and `celeba` (64x64)
are the paper's settings (Appendix B; the official configs). The five techniques are
config fields:

1. `model.sigma_1`: the largest pairwise distance of the training set
   (`gflow-noise-schedule` computes it exactly; NCSN used 1).
2. `model.num_scales` (L): from the overlap criterion for σ₁, σ_L and the data
   dimension (NCSN used 10).
3. `model.conditioning`: "divide" (the network's output divided by σ) or
   "conditional" (NCSN's conditional InstanceNorm++).
4. `model.sampling.eps` and `model.sampling.steps` (T): ε from the variance-ratio
   criterion for T (NCSN used ε = 2e-5, T = 100).
5. `train.ema_decay`: 0.999, used for evaluation and sampling (0 turns it off).

Derived values (L, ε) are computed here from σ₁, σ_L, D and T by
`gflow.score.noise_levels`, with the rule they follow; a changed σ₁ or T on the
command line does not recompute them: run `gflow-noise-schedule` and pass its values.
"""

import ml_collections

from gflow.choices import check_choice
from gflow.score import noise_levels

ARGS = ("digits", "cifar10", "celeba")

# Technique 1 for the digits, in [0, 1] pixel units over the 1,438 training digits
# (`gflow-noise-schedule --config=configs/ncsnv2.py:digits` recomputes it; a test too).
DIGITS_SIGMA_1 = 4.8137


def get_config(arg="digits"):
  if arg not in ARGS:
    check_choice(arg, ARGS, "ncsnv2 config")
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
  c.model.name = "ncsnv2"
  c.model.ngf = 16                   # 0.12 s per step of 128 digits on 2 CPU cores
  c.model.sigma_1 = DIGITS_SIGMA_1   # technique 1
  c.model.sigma_l = 0.01
  c.model.overlap = noise_levels.DEFAULT_OVERLAP  # technique 2's C
  c.model.conditioning = "divide"    # technique 3: "divide" or "conditional"
  c.model.dequantize = False         # x = ⌊v⌋/255 (the official configs); True: v/256
  c.model.eval_levels = 10           # gflow-eval reports the loss at this many levels
  c.model.num_levels = c.data.get_ref("num_levels")
  c.model.network_dtype = ""         # "", "mixed_bfloat16"
  c.model.sampling = ml_collections.ConfigDict()
  c.model.sampling.steps = 5         # T per level (technique 4)
  c.model.sampling.denoise = True    # the final noise-free step x + σ_L² s(x, σ_L)
  # XLA on 2 CPU cores: 60 s to compile the digits sampler, then 2.2 s per 64 samples
  # against 2.8 s without it (and 0.17 against 0.12 s per training step).
  c.model.sampling.jit_compile = False
  dim = 8 * 8 * 1

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 128
  c.train.num_steps = 3000
  c.train.optimizer = "adam"
  c.train.learning_rate = 1e-3
  c.train.warmup_steps = 0
  c.train.decay_rate = 1.0
  c.train.decay_steps = 1000
  c.train.grad_clip_norm = 0.0
  c.train.ema_decay = 0.999          # technique 5
  c.train.init_batch_size = 128
  c.train.jit_compile = False
  c.train.log_every = 100
  c.train.checkpoint_every = 500
  c.train.eval_every = 1000
  c.train.sample_every = 1000
  c.train.keep_checkpoints = 3

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 256
  c.eval.num_samples = 64
  c.eval.temperature = 1.0

  if arg in ("cifar10", "celeba"):
    c.model.ngf = 128
    c.model.sampling.jit_compile = True  # for GPUs
    c.train.jit_compile = True
    c.model.sampling.steps = 5
    c.train.learning_rate = 1e-4   # Adam, β₁ 0.9, ε 1e-8 (the official configs)
    c.train.log_every, c.train.checkpoint_every = 100, 5000
    c.train.eval_every, c.train.sample_every = 10_000, 5000
    c.eval.batch_size = 128
  if arg == "cifar10":
    c.data.name = "cifar10"
    c.model.sigma_1 = 50.0
    c.train.batch_size = 128
    c.train.num_steps = 300_000
    dim = 32 * 32 * 3
  elif arg == "celeba":
    c.data.name = "celeb_a"
    c.data.image_size = 64
    c.model.sigma_1 = 90.0
    c.train.batch_size = 128
    c.train.num_steps = 210_000
    dim = 64 * 64 * 3
  # Techniques 2 and 4, derived (CIFAR-10: L 232, ε 6.2e-6; CelebA 64: L 500, ε 3.3e-6).
  c.model.num_scales = noise_levels.num_levels_for(c.model.sigma_1, c.model.sigma_l, dim,
                                                   c.model.overlap).value
  c.model.sampling.eps = noise_levels.step_size_for(c.model.sigma_1, c.model.sigma_l,
                                                    c.model.num_scales,
                                                    c.model.sampling.steps).value
  return c
