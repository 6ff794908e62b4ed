"""A flow as a sequence of stages, cut into gradient-isolated parts (training flows in parts).

The log-likelihood of a flow f = f_L ∘ … ∘ f₁ is a sum over layers, so a flow can
be trained in parts, each on a local objective with the gradient stopped at its
input (forward-only communication). For part k, covering the stages after z_{k−1}
up to z_k:

    loss_k = −log p(S_k) − log|det ∂f_k/∂z_{k−1}|,

where S_k is what part k hands on: its active output, scored by the model's base
distribution (N(0, I) for Glow, N(0, σ²) for WaveFlow), and the channels it
factored out and did not merge back, scored by their learned split prior (after
the split's normalisation that is N(0, I) too, its log-det counted in the part).
Channels factored out by an earlier part are constants for part k and are left
out; those an earlier part factored out and part k merges back into its output
are counted (a constant for part k's gradients). With one part, loss₁ is the
model's own objective, exactly.

Stages (`stages_of`): a nested multi-scale flow is unrolled into a linear list:
the layers of each level in order, its split as a "factor" stage (the factored
half normalised by its prior and set aside), the next level's stages, then a
"merge" stage (the factored half concatenated back) and the rest of the level.
A level's steps (a step is a `SequentialFlow` of primitives, or a primitive
with weights, e.g. one WaveFlow flow) are numbered 1, 2, … within the level, so
boundaries read as in the paper: "1" is after level 1's split (split by block),
"1:19" after step 19 of level 1 (split across blocks: level 1's split then sits
in part 2).

Stochastic flows (DenseFlow: `StochasticSequential`, `MultiScale`,
`CrossUnitBlock`) unroll the same way. A DenseFlow block is a level; its steps
are the glow-like modules of its units, numbered across the units ("1:19" is
after module 19 of block 1, inside a unit or between two). Between units an
"augment" stage appends the cross-unit noise channels, μ + σ ⊙ e with
(μ, log σ) = g(z₀ … z_{i−1}), and adds Σ log σ − log N(e) to the objective of
the part it falls in; the block's representations z₀, z₁, … travel with the
state ("enter" starts them, "unit" records one), so a g after a boundary sees
the earlier part's representations as constants. A `MultiScale` split is a
"factor" stage (squeeze, half set aside and scored by N(0, I), DenseFlow's
fixed prior) and a "merge" stage (the flat latent). Each stage draws its noise
where the whole flow would (`Stage.noise`, the fold path from the flow's
noise), so one part's objective is the model's single-sample bound for the
same seed. The variational dequantizer belongs to part 1, and −log q(u|x) is
counted there.
"""

import contextlib
import dataclasses
import math

import tensorflow as tf

from gflow.bijectors.factor_out import FactorOut
from gflow.choices import check_choice
from gflow.layers.base import SequentialFlow, forward_and_log_det_of
from gflow.layers.cross_unit_block import CrossUnitBlock
from gflow.layers.factor_out import FactorOutLayer
from gflow.layers.learned_prior import LearnedPriorLayer
from gflow.layers.multiscale import MultiScale
from gflow.layers.stacked import StackedFlow
from gflow.layers.stochastic import StochasticFlowLayer, StochasticSequential

__all__ = ["Stage", "stages_of", "FlowParts", "SPLITS", "parse_boundaries", "run_stages",
           "on_device"]

SPLITS = ("by_block", "across_blocks")


def on_device(device):
  """`tf.device(device)`, or no scope at all for None (keeps the enclosing placement)."""
  return contextlib.nullcontext() if not device else tf.device(device)


@dataclasses.dataclass(frozen=True)
class Stage:
  """One stage of an unrolled flow.

  `kind`: "map" (a flow layer on the active tensor), "factor" (a split: the
  second half normalised by the split prior, or squeezed off by a `MultiScale`,
  and set aside), "merge" (the last half set aside joined back), and for
  DenseFlow blocks "enter" (the block's representations start with its input),
  "augment" (cross-unit noise channels before unit `index`) and "unit" (a
  unit's output joins the representations). `level` is 1-based, `step` the
  1-based number of a map stage among its level's steps (None for structure),
  `noise` the fold path of the stage's noise from the flow's noise.
  """
  kind: str
  layer: object
  level: int
  step: int = None
  index: int = None
  noise: tuple = ()

  @property
  def name(self):
    where = f"level {self.level}" + (f" step {self.step}" if self.step else "")
    unit = f" {self.index}" if self.index is not None else ""
    return f"{self.kind}{unit} {self.layer.name} ({where})"


def _is_step(layer):
  return bool(layer.weights) and not isinstance(layer, LearnedPriorLayer)


def stages_of(layer, level=1):
  """The stages of a flow layer: a `SequentialFlow` at the top or inside a split is a
  level (unrolled); other layers, steps included, are one map stage each. Stochastic
  flows unroll through `StochasticSequential`, `MultiScale` and `CrossUnitBlock`."""
  if isinstance(layer, StochasticFlowLayer):
    return _stochastic_stages(layer, level, ())
  if not isinstance(layer, SequentialFlow):
    return [Stage("map", layer, level, 1 if _is_step(layer) else None)]
  out, step = [], 0
  for child in layer.flow_layers:
    if isinstance(child, FactorOutLayer):
      out.append(Stage("factor", child, level))
      if child.inner is not None:
        out += stages_of(child.inner, level + 1)
      out.append(Stage("merge", child, level))
    elif _is_step(child):
      step += 1
      out.append(Stage("map", child, level, step))
    else:
      out.append(Stage("map", child, level))
  return out


def _stochastic_stages(layer, level, noise):
  """Stages of a stochastic flow layer whose noise is `noise` (a fold path): child i
  of a `StochasticSequential` draws from fold i, as `forward_and_bound` does."""
  if isinstance(layer, StochasticSequential):
    return [s for i, child in enumerate(layer.flow_layers)
            for s in _stochastic_stages(child, level, noise + (i,))]
  if isinstance(layer, MultiScale):
    return [Stage("factor", layer, level, noise=noise),
            *_stochastic_stages(layer.inner, level + 1, noise),
            Stage("merge", layer, level, noise=noise)]
  if isinstance(layer, CrossUnitBlock):
    out, step = [Stage("enter", layer, level)], 0
    for i, unit in enumerate(layer.units):
      if i and layer.augment:
        out.append(Stage("augment", layer, level, index=i, noise=noise))
      modules = unit.flow_layers if isinstance(unit, SequentialFlow) else [unit]
      for module in modules:
        step += 1
        out.append(Stage("map", module, level, step))
      out.append(Stage("unit", layer, level))
    return out
  if isinstance(layer, StochasticFlowLayer):
    raise TypeError(f"{type(layer).__name__} {layer.name!r} cannot be unrolled into stages "
                    "for training in parts (gflow.flows.parts knows StochasticSequential, "
                    "MultiScale and CrossUnitBlock).")
  return [Stage("map", layer, level)]


def _stage_layers(stage):
  """The layers whose variables a stage computes with: a map's layer, a split's prior,
  an augmentation's noise network g."""
  if stage.kind == "map":
    return [stage.layer]
  if stage.kind == "factor" and getattr(stage.layer, "prior", None) is not None:
    return [stage.layer.prior]
  if stage.kind == "augment" and stage.layer.noise_nets:
    return [stage.layer.noise_nets[stage.index - 1]]
  return []


def _noise_at(noise, path):
  for i in path:
    noise = noise.fold(i)
  return noise


def _factor(layer, x):
  """(active half, factored half, log-det) of a split stage."""
  if isinstance(layer, MultiScale):
    x, x2 = layer.split(x)
    return x, x2, 0.
  c = x.shape[-1]
  x, x2 = tf.split(x, [c - c // 2, c // 2], axis=-1)
  z2, d = FactorOut(prior_network=layer.prior).normalize_factored(x, x2)
  return x, z2, d


def _merge(layer, x, z2):
  if isinstance(layer, MultiScale):
    return layer.merge(x, z2)
  return tf.concat([x, z2], axis=-1)


def run_stages(stages, state, event_ndims, training=False, conditioning=None, noise=None):
  """Runs `stages` on state (x, factored[, reps]): factored is a tuple of (tensor,
  emitted-here flag), reps the current DenseFlow block's representations. Returns
  (x, factored, reps, log-weight of these stages: log|det| plus each augmentation's
  Σ log σ − log N(e)). `noise` is the flow's noise (stochastic flows only)."""
  x, factored, *rest = state
  factored, reps = list(factored), tuple(rest[0]) if rest else ()
  ldj = 0.
  for stage in stages:
    d = 0.
    if stage.kind == "map":
      x, d = forward_and_log_det_of(stage.layer, x, event_ndims, training, conditioning)
    elif stage.kind == "factor":
      x, z2, d = _factor(stage.layer, x)
      factored.append((z2, True))
    elif stage.kind == "merge":
      x = _merge(stage.layer, x, factored.pop()[0])
    elif stage.kind == "enter":
      reps = (x,)
    elif stage.kind == "unit":
      reps += (x,)
    elif stage.kind == "augment":
      x, d = stage.layer.augmentation(stage.index, x, reps[:stage.index],
                                 _noise_at(noise, stage.noise))
    else:
      raise ValueError(f"Unknown stage kind {stage.kind!r}.")
    ldj += d
  return x, tuple(factored), reps, ldj


def parse_boundaries(text, split):
  """[(level, step or None), …] from "1" / "1,2" (by_block) or "1:19" / "1:10,2:5"."""
  if split not in SPLITS:
    check_choice(split, SPLITS, "parts split (parts.split)")
  out = []
  for item in str(text).split(","):
    item = item.strip()
    if not item:
      continue
    level, _, step = item.partition(":")
    try:
      point = (int(level), int(step) if step else None)
    except ValueError:
      raise ValueError(f"parts.boundaries: {item!r} is not a level (e.g. 1) or level:step "
                       "(e.g. 1:19).") from None
    if split == "by_block" and point[1] is not None:
      raise ValueError(f"parts.boundaries {text!r}: split by_block cuts after whole levels "
                       "(e.g. 1); level:step boundaries are for split=across_blocks.")
    if split == "across_blocks" and point[1] is None:
      raise ValueError(f"parts.boundaries {text!r}: split across_blocks cuts after a step "
                       "of a level (level:step, e.g. 1:19); whole levels are split=by_block.")
    out.append(point)
  if not out:
    raise ValueError("parts.boundaries is empty: give one boundary for 2 parts, two for 3.")
  return out


class FlowParts:
  """A flow layer's stages cut at `boundaries` into len(boundaries) + 1 parts.

  `ranges[k]` is part k's slice of `stages`; `variables(k)` its trainable
  variables (a network shared across parts belongs to the first part that uses
  it; `first_part_layers`, e.g. a conditioning network or a dequantizer outside
  the flow, belong to part 1, and later parts see the conditioning with its
  gradient stopped); `owned_variables(k)` adds the part's non-trainable state
  (BatchNorm statistics, ActNorm's initialisation flags), for placing a part on
  its device. `losses(x, …)` gives each part's local objective in nats per example.
  """

  def __init__(self, layer, split, boundaries, first_part_layers=()):
    self.layer = layer
    self.devices = None  # one device per part: each part's computation runs there
    self.split = split
    self.stages = stages_of(layer)
    stacked = [s.layer.name for s in self.stages if isinstance(s.layer, StackedFlow)]
    if split == "across_blocks" and stacked:
      raise ValueError(f"parts.split='across_blocks' cuts between modules, but {stacked[0]} "
                       "holds its modules stacked in one layer (gflow.layers.StackedFlow): "
                       "build the model with model.stack_modules=False.")
    points = parse_boundaries(boundaries, split) if isinstance(boundaries, str) else list(
        boundaries)
    cuts = [self._cut(p) for p in points]
    if cuts != sorted(set(cuts)):
      raise ValueError(f"parts.boundaries {boundaries!r} must be in increasing order, each "
                       "once.")
    edges = [0] + cuts + [len(self.stages)]
    self.ranges = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
    seen, self._variables, self._owned = set(), [], []
    for k, r in enumerate(self.ranges):
      layers = list(first_part_layers if k == 0 else ())
      layers += [l for stage in self.stages[r] for l in _stage_layers(stage)]
      owned = [v for l in layers for v in l.weights if id(v) not in seen and not seen.add(id(v))]
      trainable = {id(v) for l in layers for v in l.trainable_weights}
      own = [v for v in owned if id(v) in trainable]
      if not own:
        raise ValueError(f"part {k + 1} of boundaries {boundaries!r} has no trainable "
                         "variables; move the boundary.")
      self._variables.append(own)
      self._owned.append(owned)

  def _cut(self, point):
    level, step = point
    levels = sorted({s.level for s in self.stages})
    for i, s in enumerate(self.stages):
      if step is None and s.kind == "factor" and s.level == level:
        return i + 1
      if step is not None and s.kind == "map" and s.level == level and s.step == step:
        return i + 1
    steps = [s.step for s in self.stages if s.level == level and s.step]
    if level not in levels:
      raise ValueError(f"parts.boundaries: no level {level}; the flow has levels "
                       f"{levels[0]}..{levels[-1]}.")
    if step is None:
      raise ValueError(f"parts.boundaries: level {level} has no split to cut after (the last "
                       f"level); cut after a step instead (split=across_blocks, e.g. "
                       f"{level}:{max(steps) // 2 or 1}).")
    raise ValueError(f"parts.boundaries: level {level} has steps 1..{max(steps)}; got "
                     f"{level}:{step}.")

  @property
  def num_parts(self):
    return len(self.ranges)

  def variables(self, k):
    return list(self._variables[k])

  def owned_variables(self, k):
    return list(self._owned[k])

  def describe(self):
    """One line per part: its stages' levels and steps."""
    lines = []
    for k, r in enumerate(self.ranges):
      maps = [s for s in self.stages[r] if s.step]
      first, last = maps[0], maps[-1]
      n = sum(math.prod(v.shape) for v in self._variables[k])
      lines.append(f"part {k + 1}: level {first.level} step {first.step} to level "
                   f"{last.level} step {last.step}, {n:,} parameters")
    return lines

  def losses(self, x, base_log_prob, event_ndims, training=False, conditioning=None,
             upto=None, extra_ldj=0., noise=None):
    """[loss_k per example, nats] for parts 1..`upto` (default all): part k runs on its
    predecessor's output with the gradient stopped there. `base_log_prob(t)` scores a
    tensor per example under the model's base; `extra_ldj` (e.g. a dequantization's
    log-weight) is counted in part 1; `noise` is the flow's noise (stochastic flows)."""
    upto = self.num_parts if upto is None else upto
    state, out = (x, (), ()), []
    for k in range(upto):
      if k:  # forward-only: part k sees its input as data
        x, factored, reps = state
        state = (tf.stop_gradient(x),
                 tuple((tf.stop_gradient(t), False) for t, _ in factored),
                 tuple(tf.stop_gradient(r) for r in reps))
      cond = conditioning if k == 0 or conditioning is None else tf.stop_gradient(
          conditioning)  # e.g. WaveFlow's upsampled mel: trained by part 1 only
      with on_device(self.devices[k] if self.devices else None):
        x_k, factored, reps, ldj = run_stages(self.stages[self.ranges[k]], state,
                                              event_ndims, training, cond, noise)
        log_p = base_log_prob(x_k) + sum(base_log_prob(t) for t, here in factored if here)
        out.append(-(log_p + ldj + (extra_ldj if k == 0 else 0.)))
      state = (x_k, factored, reps)
    return out
