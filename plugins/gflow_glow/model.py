"""Glow (Kingma & Dhariwal 2018): L levels of K steps, multi-scale, learned top prior.

With `model.sharing` the coupling networks share parameters as in NanoFlow
(`gflow.nets.sharing`): per level (`share_across="level"`, the paper's image
code) or across the whole model.
"""

import functools

from gflow import layers as gl
from gflow import nets
from gflow.flows import Flow
from gflow.nets.sharing import SharingGroups

__all__ = ["build_glow", "glow_step", "build_model"]


def glow_step(width, coupling="affine", scale_fn="sigmoid", lu=True, network_dtype=None,
              network_fn=None):
  """One step of flow: ActNorm → invertible 1x1 conv → coupling (Glow's CNN, or the
  factory `network_fn(out_channels)`, e.g. a sharing group's); a checkpoint boundary for
  `train.remat`. Steps with Glow's own CNN share one trace per shape
  (`train.shared_traces`); a sharing group's steps differ by their flow index."""
  trace_key = None
  if network_fn is None:
    network_fn = functools.partial(nets.GlowCNN, width=width, dtype=network_dtype)
    trace_key = f"glow_step:{width},{coupling},{scale_fn},{lu},{network_dtype}"
  return gl.checkpoint(gl.SequentialFlow([
      gl.ActNormLayer(),
      gl.Conv1x1Layer(lu=lu),
      gl.CouplingLayer(network_fn, kind=coupling, scale_fn=scale_fn),
  ]), trace_key=trace_key)


def build_glow(levels, steps, width, coupling="affine", scale_fn="sigmoid", lu=True,
               learn_top=True, split_prior=True, network_dtype=None, sharing=None):
  """The Glow flow layer: level i = squeeze → K steps → split (or top prior) → unsqueeze.

  The split at the end of each level but the last factors out half the
  channels under a learned conditional prior (`split_prior`) and hands the rest
  to level i + 1; the last level's output is scored by a learned diagonal
  Gaussian (`learn_top`). Unsqueezing at the end of every level keeps the
  latent in the data's shape. `sharing` (a `gflow.nets.sharing.SharingGroups`
  over Glow's CNN) gives each level's coupling-network factory.
  """
  if levels < 1 or steps < 1 or width < 1:
    raise ValueError(f"Glow needs levels, steps and width >= 1; got {levels}, {steps}, "
                     f"{width}.")
  inner = gl.LearnedPriorLayer() if learn_top else None
  for level in reversed(range(levels)):
    body = [gl.SqueezeLayer()]
    network_fn = sharing(level) if sharing is not None else None
    body += [glow_step(width, coupling, scale_fn, lu, network_dtype, network_fn)
             for _ in range(steps)]
    if level == levels - 1:
      body += [inner] if inner is not None else []
    else:
      body += [gl.FactorOutLayer(inner, learned_prior=split_prior)]
    body += [gl.SqueezeLayer(unsqueeze=True)]
    inner = gl.SequentialFlow(body, name=f"level_{level}")
  return inner


def build_model(model_config, event_shape):
  """Glow as a `gflow.Flow` over images of `event_shape` (H, W, C) with 256 levels."""
  h, w, _ = event_shape
  if h % 2 ** model_config.levels or w % 2 ** model_config.levels:
    raise ValueError(f"Glow with {model_config.levels} levels squeezes by "
                     f"{2 ** model_config.levels}; image size {h}x{w} is not divisible.")
  dtype = model_config.get("network_dtype") or None
  sharing = SharingGroups.from_config(
      functools.partial(nets.GlowCNN, width=model_config.width, dtype=dtype), model_config,
      default_embedding=("input", "gate"))
  layer = build_glow(
      levels=model_config.levels, steps=model_config.steps, width=model_config.width,
      coupling=model_config.coupling, scale_fn=model_config.scale_fn, lu=model_config.lu,
      learn_top=model_config.learn_top, split_prior=model_config.split_prior,
      network_dtype=dtype, sharing=sharing if sharing.variant != "none" else None)
  return Flow(layer, event_shape, num_levels=model_config.get("num_levels", 256), name="Glow")
