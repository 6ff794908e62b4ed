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
"""

import contextlib
import dataclasses
import math

import tensorflow as tf

from gflow.bijectors.factor_out import FactorOut
from gflow.choices import check_choice
from gflow.layers.base import SequentialFlow, forward_and_log_det_of
from gflow.layers.factor_out import FactorOutLayer
from gflow.layers.learned_prior import LearnedPriorLayer

__all__ = ["Stage", "stages_of", "FlowParts", "SPLITS", "parse_boundaries", "run_stages",
           "on_device"]

SPLITS = ("by_block", "across_blocks")


def on_device(device):
  """`tf.device(device)`, or no scope at all for None (keeps the enclosing placement)."""
  return contextlib.nullcontext() if not device else tf.device(device)


@dataclasses.dataclass(frozen=True)
class Stage:
  """One stage of an unrolled flow: `kind` "map" (a flow layer on the active tensor),
  "factor" (a split: the second half normalised by the split prior and set aside) or
  "merge" (the last half set aside concatenated back); `level` is 1-based, `step` the
  1-based number of a map stage among its level's steps (None for structure)."""
  kind: str
  layer: object
  level: int
  step: int = None

  @property
  def name(self):
    where = f"level {self.level}" + (f" step {self.step}" if self.step else "")
    return f"{self.kind} {self.layer.name} ({where})"


def _is_step(layer):
  return bool(layer.weights) and not isinstance(layer, LearnedPriorLayer)


def stages_of(layer, level=1):
  """The stages of a flow layer: a `SequentialFlow` at the top or inside a split is a
  level (unrolled); other layers, steps included, are one map stage each."""
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


def _stage_variables(stage):
  """The trainable variables a stage computes with: a map's layer's, a split's prior's."""
  if stage.kind == "map":
    return list(stage.layer.trainable_weights)
  if stage.kind == "factor" and stage.layer.prior is not None:
    return list(stage.layer.prior.trainable_weights)
  return []


def run_stages(stages, state, event_ndims, training=False, conditioning=None):
  """Runs `stages` on state (x, factored: a tuple of (tensor, emitted-here flag)),
  returning (x, factored, log|det| of these stages)."""
  x, factored = state
  factored = list(factored)
  ldj = 0.
  for stage in stages:
    if stage.kind == "map":
      x, d = forward_and_log_det_of(stage.layer, x, event_ndims, training, conditioning)
    elif stage.kind == "factor":
      c = x.shape[-1]
      x, x2 = tf.split(x, [c - c // 2, c // 2], axis=-1)
      z2, d = FactorOut(prior_network=stage.layer.prior).normalize_factored(x, x2)
      factored.append((z2, True))
    else:
      z2, _ = factored.pop()
      x, d = tf.concat([x, z2], axis=-1), 0.
    ldj += d
  return x, tuple(factored), ldj


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
  it; `first_part_variables`, e.g. a conditioning network outside the flow,
  belong to part 1, and later parts see the conditioning with its gradient
  stopped). `losses(x, …)` gives each part's local objective in nats per example.
  """

  def __init__(self, layer, split, boundaries, first_part_variables=()):
    self.layer = layer
    self.devices = None  # one device per part: each part's computation runs there
    self.split = split
    self.stages = stages_of(layer)
    points = parse_boundaries(boundaries, split) if isinstance(boundaries, str) else list(
        boundaries)
    cuts = [self._cut(p) for p in points]
    if cuts != sorted(set(cuts)):
      raise ValueError(f"parts.boundaries {boundaries!r} must be in increasing order, each "
                       "once.")
    edges = [0] + cuts + [len(self.stages)]
    self.ranges = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
    seen, self._variables = set(), []
    for k, r in enumerate(self.ranges):
      candidates = list(first_part_variables if k == 0 else ())
      candidates += [v for stage in self.stages[r] for v in _stage_variables(stage)]
      own = [v for v in candidates if id(v) not in seen and not seen.add(id(v))]
      if not own:
        raise ValueError(f"part {k + 1} of boundaries {boundaries!r} has no trainable "
                         "variables; move the boundary.")
      self._variables.append(own)

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
             upto=None, extra_ldj=0.):
    """[loss_k per example, nats] for parts 1..`upto` (default all): part k runs on its
    predecessor's output with the gradient stopped there. `base_log_prob(t)` scores a
    tensor per example under the model's base; `extra_ldj` (e.g. a dequantization's
    constant) is counted in part 1."""
    upto = self.num_parts if upto is None else upto
    state, out = (x, ()), []
    for k in range(upto):
      if k:  # forward-only: part k sees its input as data
        state = (tf.stop_gradient(state[0]),
                 tuple((tf.stop_gradient(t), False) for t, _ in state[1]))
      cond = conditioning if k == 0 or conditioning is None else tf.stop_gradient(
          conditioning)  # e.g. WaveFlow's upsampled mel: trained by part 1 only
      with on_device(self.devices[k] if self.devices else None):
        x_k, factored, ldj = run_stages(self.stages[self.ranges[k]], state, event_ndims,
                                        training, cond)
        log_p = base_log_prob(x_k) + sum(base_log_prob(t) for t, here in factored if here)
        out.append(-(log_p + ldj + (extra_ldj if k == 0 else 0.)))
      state = (x_k, factored)
    return out
