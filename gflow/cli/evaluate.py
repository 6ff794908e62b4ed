"""gflow-eval: a trained run's evaluation figures on its test set, from its last checkpoint.

    gflow-eval --workdir=runs/digits
    gflow-eval --workdir=runs/denseflow_digits --num_importance_samples=1000

Prints each figure the model reports (image flows: `test bits/dim`, audio
models: `test log-likelihood` in nats/sample) as mean ± standard error over the
test items, then the data's baselines (audio: a Gaussian fitted to the training
audio, scored on the same clips). `--num_importance_samples=K` asks for a
Monte Carlo estimate over K samples per item (for models whose likelihood is a
bound: the importance-weighted estimate over K joint draws of all noise).

    gflow-eval --workdir=runs/ncsnv2 --nearest_neighbours --num_samples=16 --neighbours=3

`--nearest_neighbours` is the memorisation check, for any image model: grids of
samples, each beside its nearest training images (L2 on pixels, and L2 in the
feature space of `--features`), and the mean distance from the training set of the
samples against that of held-out test images, in each space. `--fid` prints
FID and KID of samples against real images with their protocol (number of samples,
seed, denoising, reference split, feature network), and the same figures for real
images of the other split (the floor).
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
_NEAREST = flags.DEFINE_bool(
    "nearest_neighbours", False, "Instead of the test figures: draw --num_samples samples, "
    "write PNG grids of each beside its --neighbours nearest training images (L2 on pixels "
    "in [0, 1], and L2 in the feature space of --features) and print how far samples and "
    "test images lie from the training set in each space.")
_NUM = flags.DEFINE_integer("num_samples", 16, "--nearest_neighbours: samples to draw.",
                            lower_bound=1)
_NEIGHBOURS = flags.DEFINE_integer("neighbours", 3, "--nearest_neighbours: neighbours per "
                                   "sample in the grid.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "--nearest_neighbours: the sampling seed.",
                             lower_bound=0)
_OUT = flags.DEFINE_string("out", "", "--nearest_neighbours: the pixel grid's path (default "
                           "<workdir>/samples/neighbours.png; the feature-space grid is "
                           "written beside it, <name>_features.png).")
_FID = flags.DEFINE_bool(
    "fid", False, "Instead of the test figures: FID and KID of --fid_samples samples against "
    "the --reference split, in the feature space of --features, with their protocol.")
_FID_SAMPLES = flags.DEFINE_integer("fid_samples", 1000, "--fid: samples to draw.",
                                    lower_bound=2)
_FEATURES = flags.DEFINE_string("features", "", "--fid and --nearest_neighbours: the feature "
                                "network, 'inception' (InceptionV3, its weights need a "
                                "download) or 'classifier' (trained on the digits); default: "
                                "classifier for the digits, else inception. --nearest_neighbours "
                                "also takes 'none' (pixels only).")
_REFERENCE = flags.DEFINE_enum("reference", "test", ["test", "train"], "--fid: the real "
                               "images samples are compared with.")
_XLA_CACHE = common.define_xla_cache_flag()
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
  common.check_xla_cache(_XLA_CACHE.value, _WORKDIR.value)
  model = gflow.load(_WORKDIR.value, use_ema=_EMA.value)
  if _NEAREST.value or _FID.value:  # either or both, on the model and features loaded once
    name = _FEATURES.value or ("classifier" if config.data.name == "digits" else "inception")
    if name == "none" and _FID.value:
      raise ValueError("--fid needs a feature network: --features=inception or classifier.")
    source = _image_source(config, "nearest_neighbours" if _NEAREST.value else "fid")
    features = None
    if name != "none":
      from gflow.metrics.features import feature_network
      features = feature_network(name, config.data.name, seed=_SEED.value)
    if _NEAREST.value:
      _nearest_neighbours(config, model, source, features)
    if _FID.value:
      _fid(config, model, source, features)
    return 0
  chunk = _CHUNK.value or config.eval.get("importance_chunk") or k
  batch = _BATCH.value or max(1, config.eval.batch_size // min(chunk, k))
  source = gdata.load(config.data)
  dataset = source.eval_dataset(batch, seed=config.seed + 2, limit=_LIMIT.value)
  figures = evaluation.evaluate(model, dataset, config.seed + 4, k, chunk,
                                shared_traces=bool(config.train.get("shared_traces", False)))
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


def _image_source(config, mode):
  """The run's data source, which --<mode> needs to hold images."""
  from gflow import data as gdata
  source = gdata.load(config.data)
  if len(source.event_shape) != 3:
    raise ValueError(f"--{mode} compares images; {source.name} holds examples of shape "
                     f"{source.event_shape}.")
  return source


def _nearest_neighbours(config, model, source, features=None):
  """The memorisation check: samples beside their nearest training images, on pixels and
  (given `features`, a (function, description) pair) in a feature space."""
  import os

  import numpy as np

  from gflow import data as gdata
  from gflow.io.images import save_png
  from gflow.metrics.nearest_neighbours import nearest_neighbours, neighbour_grid, pixels
  levels = config.data.get("num_levels", 256)
  train = gdata.all_images(source, "train")
  test = gdata.all_images(source, "test", limit=max(_NUM.value, 256))
  if hasattr(model, "progress"):
    from gflow.score.langevin import TextProgress
    model.progress = TextProgress()
  samples = np.asarray(model.generate(_NUM.value, seed=[_SEED.value, 0],
                                      temperature=config.eval.get("temperature", 1.0)))
  out = _OUT.value or os.path.join(_WORKDIR.value, "samples", "neighbours.png")
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  spaces = [(out, lambda x: pixels(x, levels), "L2, pixels in [0, 1]", "")]
  if features is not None:
    root, ext = os.path.splitext(out)
    fn, described = features
    spaces.append((f"{root}_features{ext or '.png'}", fn, f"L2 in the features of {described}",
                   " (features)"))

  def stat(d):
    return f"{d.mean():.4f} ± {d.std(ddof=1) / np.sqrt(len(d)):.4f}"
  for path, fn, described, tag in spaces:
    idx, dist = nearest_neighbours(samples, train, _NEIGHBOURS.value, fn)
    _, test_dist = nearest_neighbours(test, train, 1, fn)
    save_png(path, neighbour_grid(samples, train, idx), ncols=_NEIGHBOURS.value + 1,
             upscale=max(1, 64 // samples.shape[1]))
    print(f"wrote {path}: {len(samples)} samples, each beside its {_NEIGHBOURS.value} nearest "
          f"of {len(train):,} training images ({described})")
    print(f"nearest training image{tag}, samples: {stat(dist[:, 0])}")
    print(f"nearest training image{tag}, test images: {stat(test_dist[:, 0])} "
          f"({len(test)} held-out images)")
    ratio = dist[:, 0].mean() / test_dist[:, 0].mean()
    verdict = ("well below 1: the samples copy training images" if ratio < 0.5 else
               "not far below 1: no sign of copying at this distance")
    print(f"samples / test{tag}: {ratio:.3f} ({verdict})")
  return 0


def _samples(config, model, n, seed, batch=500):
  """n generated uint8 images, `batch` at a time."""
  import numpy as np
  out = []
  for j, start in enumerate(range(0, n, batch)):
    out.append(np.asarray(model.generate(min(batch, n - start), seed=[seed, j],
                                         temperature=config.eval.get("temperature", 1.0))))
  return np.concatenate(out)


def _fid(config, model, source, features):
  """FID and KID of samples against real images, printed with their protocol."""
  import time

  from gflow import data as gdata
  from gflow.metrics.fid import fid, kid
  features, described = features
  real = gdata.all_images(source, _REFERENCE.value)
  start = time.perf_counter()
  samples = _samples(config, model, _FID_SAMPLES.value, _SEED.value)
  seconds = time.perf_counter() - start
  f_samples, f_real = features(samples), features(real)
  k, k_se = kid(f_samples, f_real, seed=_SEED.value)
  sampling = getattr(model, "sampling", None)
  if sampling:
    extra = f", final denoising step {'on' if sampling.get('denoise', True) else 'off'}"
  else:
    extra = f", temperature {config.eval.get('temperature', 1.0):g}"
  print(f"protocol: {len(samples)} samples (seed {_SEED.value}{extra}, {seconds:.1f} s) "
        f"against the {len(real):,} {_REFERENCE.value} images of {source.name}; "
        f"features: {described}")
  print(f"FID: {fid(f_samples, f_real):.4f}")
  print(f"KID: {k:.5f} ± {k_se:.5f}")
  other = "train" if _REFERENCE.value == "test" else "test"
  real_other = gdata.all_images(source, other, limit=len(samples))
  f_other = features(real_other)
  print(f"real {other} images against the same reference ({len(real_other)} images, the "
        f"floor): FID {fid(f_other, f_real):.4f}, KID {kid(f_other, f_real)[0]:.5f}")
  return 0


def run():
  common.run_app(main)


if __name__ == "__main__":
  run()
