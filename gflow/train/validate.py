"""The training config checked whole, before any data is read or model built.

Every problem is collected and reported together, one per line, each naming
the field, the value and what it must be, so a user fixes a config in one go
instead of one traceback at a time.
"""

import math
import numbers

from gflow.choices import check_choice
from gflow.flows.parts import SPLITS
from gflow.nets.sharing import PROJECTIONS, SCOPES, VARIANTS, parse_embedding
from gflow.train.graph_options import LEVELS as STEP_GRAPH_LEVELS
from gflow.train.parts_schedule import SCHEDULES

__all__ = ["ConfigError", "validate"]

POSITIVE_INTS = ("train.batch_size", "train.num_steps", "train.log_every",
                 "train.checkpoint_every", "train.eval_every", "train.sample_every",
                 "train.keep_checkpoints", "train.init_batch_size", "eval.batch_size")
JIT_SCOPES = ("step", "modules")  # train.jit_scope: what XLA compiles as one program
NON_NEGATIVE = ("train.warmup_steps", "train.grad_clip_norm", "train.ema_decay")


class ConfigError(ValueError):
  """A config field with a value it may not have."""


def _get(config, field):
  node = config
  for part in field.split("."):
    if part not in node:
      return None
    node = node[part]
  return node


def validate(config, optimizers=(), policies=()):
  """ConfigError listing every bad field of `config` (a ConfigDict)."""
  problems = []
  for field in POSITIVE_INTS:
    v = _get(config, field)
    if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1):
      problems.append(f"config.{field} must be a whole number >= 1; got {v!r}")
  for field in NON_NEGATIVE:
    v = _get(config, field)
    if v is not None and (not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0):
      problems.append(f"config.{field} must be a finite number >= 0; got {v!r}")
  lr = _get(config, "train.learning_rate")
  if lr is not None and (not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr <= 0):
    problems.append(f"config.train.learning_rate must be a finite number > 0; got {lr!r}")
  ema = _get(config, "train.ema_decay")
  if isinstance(ema, numbers.Real) and not ema < 1:
    problems.append(f"config.train.ema_decay must be < 1 (0 turns it off); got {ema!r}")
  for field, choices, what in (("train.optimizer", optimizers, "optimizer"),
                               ("model.network_dtype", policies, "network dtype"),
                               ("model.sharing", VARIANTS, "parameter sharing"),
                               ("model.share_across", SCOPES, "sharing scope"),
                               ("model.projection", PROJECTIONS, "projection"),
                               ("parts.schedule", SCHEDULES, "parts schedule"),
                               ("train.step_graph", STEP_GRAPH_LEVELS,
                                "step graph optimisation")):
    v = _get(config, field)
    if v is not None and choices:
      try:
        check_choice(v, choices, f"{what} (config.{field})")
      except ValueError as e:
        problems.append(str(e).rstrip("."))
  if _get(config, "model.sharing") not in (None, "none"):
    try:
      parse_embedding(_get(config, "model.flow_embedding") or "")
    except ValueError as e:
      problems.append(str(e).rstrip("."))
    size = _get(config, "model.flow_embedding_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, numbers.Integral)
                             or size < 1):
      problems.append(f"config.model.flow_embedding_size must be a whole number >= 1; "
                      f"got {size!r}")
  jit = _get(config, "train.jit_compile")
  if jit is not None and not isinstance(jit, bool):
    problems.append(f"config.train.jit_compile must be true, false or unset (XLA on GPUs "
                    f"only); got {jit!r}")
  scope = _get(config, "train.jit_scope")
  if scope is not None:
    try:
      check_choice(scope, JIT_SCOPES, "XLA's scope (config.train.jit_scope)")
    except ValueError as e:
      problems.append(str(e).rstrip("."))
    if scope == "modules" and jit is not False and not _get(
        config, "train.shared_traces"):
      problems.append("config.train.jit_scope='modules' compiles each shared module trace: "
                      "it needs config.train.shared_traces=True")
  split = _get(config, "parts.split")
  if split:
    try:
      check_choice(split, SPLITS, "parts split (config.parts.split)")
    except ValueError as e:
      problems.append(str(e).rstrip("."))
  if split == "across_blocks" and _get(config, "model.stack_modules"):
    problems.append("config.parts.split='across_blocks' cuts between modules, which "
                    "config.model.stack_modules=True holds stacked in one layer per unit: "
                    "set config.model.stack_modules=False")
  for field in ("parts.steps_per_part", "parts.turn_steps", "parts.end_to_end_steps"):
    v = _get(config, field)
    if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0):
      problems.append(f"config.{field} must be a whole number >= 0; got {v!r}")
  if problems:
    raise ConfigError("bad config: " + "; ".join(problems) + ".")
