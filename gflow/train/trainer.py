"""The training loop, in phases: data, model, step, checkpoint, evaluation.

    trainer = Trainer(config, workdir, strategy)
    trainer.train()            # resumes from the last checkpoint if there is one
    trainer.evaluate()         # the model's evaluation figures on the test set

The trainer knows a model only through the protocol of `gflow.model` (loss,
initialisation, evaluation figures, generation, output writer) and its data
only through `gflow.data.DataSource`: an image flow, an audio flow and a score
model train through the same code. Everything random is a stateless function
of (config.seed, step), so a killed run that restarts from its last checkpoint
continues exactly as the uninterrupted run would have.
"""

import contextlib
import datetime
import functools
import glob
import json
import math
import os
import shutil
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from gflow import data as gdata
from gflow._console import harmless_lines_hidden
from gflow import registry
from gflow.bfloat16_speed import slow_bfloat16_warning
from gflow.choices import check_choice
from gflow.eager_variables import fast_variable_creation
from gflow.flows.parts import on_device
from gflow.nets.batch_norm import replica_local_statistics, sync_replica_statistics
from gflow.model import check_model
from gflow.noise import Noise
from gflow.train import evaluation
from gflow.train import resume_config
from gflow.train import xla_choice
from gflow.train.checkpoint import check_model_entries, model_variables, trackable
from gflow.train.best import BestCheckpoint
from gflow.train.checkpoint_files import intact_latest
from gflow.train.chunked_calls import call_in_chunks
from gflow.train.clipping import clip_by_global_norm, total
from gflow.train.ema import EMA
from gflow.train.fused_optimizers import FusedAdam, FusedAdamax
from gflow.train.graph_options import LightStep, resolve as resolve_step_graph
from gflow.train.instantiation import instantiating
from gflow.train.interrupt import StopRequests, TrainingInterrupted
from gflow.train.lock import workdir_lock
from gflow.train.parts_schedule import PartsSchedule
from gflow.train.progress import Progress
from gflow.train.schedule import WarmupExponentialDecay
from gflow.train.validate import validate

__all__ = ["Trainer", "CheckpointWriteError", "TrainingDiverged", "TrainingInterrupted", "build_model", "load_run",
           "finetune_config", "CONFIG_FILE", "RUN_FILE"]

CONFIG_FILE = "config.json"
RUN_FILE = "run.json"  # what the model was built for (event shape, data)
_TRAIN_NOISE, _INIT_NOISE = 1, 2  # noise streams of the training step and the init
# Keras' Adam and Adamax, each variable updated by one fused kernel (gflow.train.fused_optimizers)
OPTIMIZERS = {"adam": FusedAdam, "adamax": FusedAdamax}
POLICIES = ("", "float32", "mixed_bfloat16", "mixed_float16")


class CheckpointWriteError(OSError):
  """A checkpoint could not be written; nothing half-written was left behind."""


class TrainingDiverged(RuntimeError):
  """The loss or a gradient became NaN or Inf; the update was not applied and nothing
  after the last good checkpoint was saved."""


def build_model(config, event_shape):
  """The model that `config.model.name` names, from its plugin (checked against the protocol)."""
  policy = config.model.get("network_dtype", "")
  if policy not in POLICIES:
    raise ValueError(f"config.model.network_dtype must be one of {POLICIES}; got {policy!r}.")
  with fast_variable_creation():  # thousands of variables: see gflow.eager_variables
    model = registry.get_model_builder(config.model.name)(config.model, tuple(event_shape))
  return check_model(model, config.model.name)


def _compute_devices(strategy):
  """The names of the devices `strategy` computes on (the default strategy: the first
  GPU, else the CPU)."""
  try:
    return list(strategy.extended.worker_devices)
  except RuntimeError:  # the default strategy has no worker devices
    gpus = tf.config.list_logical_devices("GPU")
    return [gpus[0].name if gpus else "/device:CPU:0"]


def trainable_keyed(model):
  """{checkpoint key: variable} of the model's trainable variables, in key order: the
  optimizer's slots and the EMA's shadows follow the keys, not a traversal order."""
  trainable = {id(v) for v in model.trainable_variables}
  return {k: v for k, v in model_variables(model.layer).items() if id(v) in trainable}


def _check_writable(workdir):
  """Creates `workdir` and writes a file in it, or raises one clear error."""
  try:
    os.makedirs(workdir, exist_ok=True)
    with tempfile.TemporaryFile(dir=workdir):
      pass
  except OSError as e:
    raise WorkdirNotWritable(f"Cannot write to --workdir={workdir}: {e.strerror or e}.") from None


class WorkdirNotWritable(ValueError):
  """The workdir cannot be created or written."""


def _as_float(x):
  return float(np.asarray(x))


class Trainer:
  """Trains the model of `config` in `workdir` under `strategy`."""

  def __init__(self, config, workdir, strategy=None, verbose=True, init_from=None):
    validate(config, OPTIMIZERS, POLICIES)
    self.config = config
    self.workdir = workdir
    self.init_from = init_from  # a trained workdir whose weights start this run
    self.strategy = strategy or tf.distribute.get_strategy()
    self.chief = self.strategy.extended.should_checkpoint
    self.verbose = verbose and self.chief
    self.global_batch = config.train.batch_size
    devices = _compute_devices(self.strategy)
    self.jit_compile = xla_choice.jit_compile_for(config.train.jit_compile, devices)
    self._log(xla_choice.describe(config.train.jit_compile, devices))
    if self.chief:
      _check_writable(workdir)
    self._setup_data()
    self._setup_model()
    self._setup_checkpoint()
    self._train_step = self._eval_fn = self._sample_fn = None
    self._phase_fns, self._phase = {}, None  # training in parts: a step per phase
    self._writer = None

  # -- phase 1: data ---------------------------------------------------------
  def _setup_data(self):
    self.data = gdata.load(self.config.data)
    if self.global_batch % self.strategy.num_replicas_in_sync:
      raise ValueError(f"train.batch_size {self.global_batch} must be divisible by the "
                       f"{self.strategy.num_replicas_in_sync} replicas.")
    expected = self.config.data.get("num_train")
    if expected is not None and expected != self.data.num_train:
      raise ValueError(
          f"config.data.num_train is {expected} but {self.data.name} has "
          f"{self.data.num_train} training examples; the config derives its per-epoch "
          f"schedule (train.decay_steps, train.num_steps) from it. Pass "
          f"--config.data.num_train={self.data.num_train}.")
    if self.global_batch > self.data.num_train:
      raise ValueError(f"train.batch_size {self.global_batch} exceeds the "
                       f"{self.data.num_train} training examples of {self.data.name}.")

  def _dataset(self, global_batch, start_step, seed_offset=0):
    return gdata.distribute(
        self.strategy,
        lambda: self.data.train_dataset(global_batch, self.config.seed + seed_offset,
                                        start_step),
        global_batch)

  # -- phase 2: model and optimizer ------------------------------------------
  def _setup_model(self):
    c = self.config.train
    if c.optimizer not in OPTIMIZERS:
      check_choice(c.optimizer, sorted(OPTIMIZERS), "optimizer (train.optimizer)")
    keras.utils.set_random_seed(self.config.seed)  # weight initialisers
    slow = slow_bfloat16_warning(self.config.model.get("network_dtype", ""),
                                 _compute_devices(self.strategy))
    if slow and self.verbose:
      print(slow, file=sys.stderr, flush=True)
    with self.strategy.scope(), fast_variable_creation():
      self.devices = self._part_devices()
      if self.devices:
        self.model = self._build_on_part_devices()
      else:
        self.model = build_model(self.config, self.data.event_shape)
      trainable = trainable_keyed(self.model)
      self.variables = list(trainable.values())
      schedule = WarmupExponentialDecay(c.learning_rate, c.warmup_steps, c.decay_rate,
                                        c.decay_steps, c.get("decay_staircase", False))
      opt = OPTIMIZERS[c.optimizer](learning_rate=schedule)
      if self.config.model.get("network_dtype") == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
      self.parts = self._setup_parts(trainable)
      if self.parts is None:
        # Slots are created here, in the strategy's scope: lazily inside
        # `strategy.run` they would fail.
        opt.build(self.variables)
        self.optimizer = opt
        self.groups = [(opt, self.variables)]
      self.ema = (EMA(trainable, c.ema_decay, colocate=bool(self.devices)) if c.ema_decay
                  else None)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

  def _part_devices(self):
    """`parts.devices` as a list (one device per part), checked; None when unset."""
    p = self.config.get("parts")
    text = p.get("devices", "") if p is not None else ""
    if not text:
      return None
    devices = [d.strip() for d in text.split(",") if d.strip()]
    if not p.get("split"):
      raise ValueError("parts.devices places the parts of a flow trained in parts: set "
                       "parts.split too.")
    if self.strategy.num_replicas_in_sync > 1:
      raise ValueError("parts.devices places each part on its own device; it cannot be "
                       "combined with a multi-replica strategy (use --strategy=default).")
    def short(name):  # "/device:CPU:1" and "/job:…/device:CPU:1" → "/CPU:1"
      return "/" + name.upper().rsplit("DEVICE:", 1)[-1].lstrip("/")
    known = [d.name for d in tf.config.list_logical_devices()]
    for d in devices:
      if short(d) not in {short(k) for k in known}:
        raise ValueError(f"parts.devices: no device {d!r} on this machine; it has "
                         f"{', '.join(short(k) for k in known) or 'none'}.")
    return devices

  def _build_on_part_devices(self):
    """The model with each part's variables created on its device (`parts.devices`):
    a first build (discarded) finds which part each variable, in creation order,
    belongs to; the second, from the same seed, creates each on its part's device."""
    created = []

    def record(next_creator, **kwargs):
      v = next_creator(**kwargs)
      created.append(v)
      return v
    with tf.variable_creator_scope(record):
      probe = build_model(self.config, self.data.event_shape)
    p = self.config.parts
    parts = probe.flow_parts(p.split, p.boundaries)
    if parts.num_parts != len(self.devices):
      raise ValueError(f"parts.devices names {len(self.devices)} devices for "
                       f"{parts.num_parts} parts.")
    part_of = {id(getattr(v, "_value", v)): k for k in range(parts.num_parts)
               for v in parts.owned_variables(k)}
    placement = iter([self.devices[part_of.get(id(v), 0)] for v in created])

    def place(next_creator, **kwargs):
      with tf.device(next(placement)):
        return next_creator(**kwargs)
    keras.utils.set_random_seed(self.config.seed)  # the same initial weights
    with tf.variable_creator_scope(place):
      return build_model(self.config, self.data.event_shape)

  def _setup_parts(self, trainable):
    """With `config.parts.split` set: the model's gradient-isolated parts, one optimizer
    per part (its own learning rate, `parts.learning_rates`), and the schedule of
    phases. None otherwise."""
    p, c = self.config.get("parts"), self.config.train
    if p is None or not p.get("split"):
      return None
    if not hasattr(self.model, "flow_parts"):
      raise ValueError(f"{self.config.model.name} cannot be trained in parts: its model has no "
                       "flow_parts/part_losses (gflow.flows.parts); unset parts.split.")
    if self.config.model.get("network_dtype") == "mixed_float16":
      raise ValueError("Training in parts does not support mixed_float16 (loss scaling); use "
                       "mixed_bfloat16 or float32.")
    parts = self.model.flow_parts(p.split, p.boundaries)
    parts.devices = self.devices
    rates = [float(r) for r in str(p.get("learning_rates", "")).split(",") if r.strip()]
    if rates and len(rates) != parts.num_parts:
      raise ValueError(f"parts.learning_rates gives {len(rates)} rates for "
                       f"{parts.num_parts} parts.")
    rates = rates or [c.learning_rate] * parts.num_parts
    by_id = {id(v): k for k, v in trainable.items()}
    covered = {id(v) for k in range(parts.num_parts) for v in parts.variables(k)}
    missing = [by_id[i] for i in by_id if i not in covered]
    if missing:
      raise ValueError(f"Variables of no part: {missing[:3]}; the model cannot be trained in "
                       "these parts.")
    self.groups = []
    order = {id(w): i for i, w in enumerate(trainable.values())}
    for k, rate in enumerate(rates):
      schedule = WarmupExponentialDecay(rate, c.warmup_steps, c.decay_rate, c.decay_steps,
                                        c.get("decay_staircase", False))
      opt = OPTIMIZERS[c.optimizer](learning_rate=schedule, name=f"part_{k + 1}")
      # Each part's variables in checkpoint-key order, as the single optimizer's.
      variables = sorted(parts.variables(k), key=lambda v: order[id(v)])
      with on_device(self.devices[k] if self.devices else None):  # slots beside the weights
        opt.build(variables)
      self.groups.append((opt, variables))
    self.optimizer = self.groups[0][0]
    steps_per_epoch = max(self.data.num_train // self.global_batch, 1)
    self.schedule = PartsSchedule(p.schedule, parts.num_parts, c.num_steps,
                                  p.get("end_to_end_steps", 0), p.get("steps_per_part", 0),
                                  p.get("turn_steps", 0), steps_per_epoch)
    self.phase_state = tf.Variable([-1, -1], dtype=tf.int64, trainable=False,
                                   name="parts_phase")  # (end to end?, first active part)
    for line in parts.describe():
      self._log(f"Training in parts ({p.split}, {p.schedule}): {line}")
    return parts

  # -- phase 3: checkpoints --------------------------------------------------
  def _setup_checkpoint(self):
    self.model_entries = model_variables(self.model.layer)
    items = dict(model=trackable(self.model_entries), step=self.step)
    if self.parts is None:
      items["optimizer"] = self.optimizer
    else:
      items.update({f"optimizer_part_{k + 1}": opt for k, (opt, _) in enumerate(self.groups)})
      items["parts_phase"] = self.phase_state
    if self.ema is not None:
      items["ema"] = self.ema
    self.checkpoint = tf.train.Checkpoint(**items)
    self.checkpoint_dir = os.path.join(self.workdir, "checkpoints")
    self._make_manager()

  def _make_manager(self):
    directory = self.checkpoint_dir
    if not self.chief:  # other workers write (and then drop) a private copy
      directory = tempfile.mkdtemp(prefix="gflow_worker_ckpt_")
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, directory, max_to_keep=self.config.train.keep_checkpoints)
    self.best = BestCheckpoint(self.checkpoint, os.path.join(directory, "best"))

  def restore(self):
    """Restores the newest intact checkpoint if any (damaged newer ones are set
    aside, see `checkpoint_files`); returns its step (0 for a new run)."""
    if self.chief:
      path = intact_latest(self.checkpoint_dir, log=self._log)
      if path != self.manager.latest_checkpoint:
        self._make_manager()  # it read the index before the repair
    else:
      path = tf.train.latest_checkpoint(self.checkpoint_dir)
    if path:
      check_model_entries(path, self.model_entries)
      self.checkpoint.restore(path).assert_existing_objects_matched()
      self._log(f"Resumed from {path} (step {int(self.step.numpy())}).")
    return int(self.step.numpy())

  def _load_weights(self, workdir):
    """The model (and EMA) weights of another run's last checkpoint; the
    optimizer and step start afresh (fine-tuning)."""
    path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if path is None:
      raise FileNotFoundError(f"{workdir!r} has no checkpoint to fine-tune from.")
    check_model_entries(path, self.model_entries)
    items = dict(model=self.checkpoint.model)
    if self.ema is not None:
      items["ema"] = self.ema
    tf.train.Checkpoint(**items).restore(path).expect_partial()
    self._log(f"Fine-tuning from {path}.")

  def save(self):
    """A checkpoint of the current step. If it cannot be written (disk full or
    read-only), its half-written files are removed and the previous checkpoints
    stay as they were."""
    step = int(self.step.numpy())
    try:
      path = self.manager.save(checkpoint_number=step)
    except (OSError, tf.errors.OpError) as e:
      for path in glob.glob(os.path.join(glob.escape(self.manager.directory), f"ckpt-{step}*")):
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
      detail = getattr(e, "message", None) or str(e)
      raise CheckpointWriteError(
          f"Could not write the checkpoint of step {step} to {self.manager.directory} "
          f"({detail.strip().splitlines()[0]}): is the disk full or read-only? The last "
          f"checkpoint, {self.manager.latest_checkpoint or 'none'}, is intact.") from e
    self._log(f"Saved {path}")

  # -- phase 4: the step -----------------------------------------------------
  def initialize(self):
    """The model's data-dependent init on one global batch, reduced over replicas."""
    n = min(self.config.train.init_batch_size, self.data.num_train)
    n -= n % self.strategy.num_replicas_in_sync
    batch = next(iter(self._dataset(n, 0, seed_offset=1)))

    def init(b):
      self.model.initialize(b, seed=self._noise(b, _INIT_NOISE, n))
      self._sync_replica_statistics()
    # Eager: it runs once, and tracing a deep model's forward pass (unshared: each
    # ActNorm fits its own statistics) for Grappler costs more than running it
    # (DenseFlow-74-10 in gflow-train: initialised 56 s after launch traced, 29 s eager).
    self.strategy.run(init, args=(batch,))
    self._log(f"Initialised from data ({n} examples).")

  def _noise(self, batch, stream, global_batch):
    """This replica's rows of the noise of a global batch: a stateless function of
    (config.seed, stream, step), so a resumed run and any number of replicas draw
    what one uninterrupted replica would."""
    seed = tf.stack([tf.constant(self.config.seed, tf.int32),
                     tf.cast(self.step, tf.int32) + 1])
    seed = tf.random.experimental.stateless_fold_in(seed, stream)
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
      return Noise(seed)
    rows = tf.shape(tf.nest.flatten(batch)[0])[0]
    offset = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * rows
    return Noise(seed, offset=offset, global_batch=global_batch)

  def _loss_and_grads(self, batch):
    """This replica's share of the loss and its gradients (no cross-replica sync)."""
    with tf.GradientTape() as tape, self._recompute_scope():
      noise = self._noise(batch, _TRAIN_NOISE, self.global_batch)
      per_example = self.model.loss(batch, noise, training=True)
      loss = tf.reduce_sum(tf.cast(per_example, tf.float32)) / self.global_batch
      scaled = self.optimizer.scale_loss(loss)
    return loss, tape.gradient(scaled, self.variables)

  def _recompute_scope(self):
    """Entered at trace time around the training loss: `train.remat` (checkpoint layers
    recompute their activations in the backward pass; `self._xla` says whether XLA
    compiles the trace) and `train.shared_traces` (checkpoint layers with a trace key
    share one trace per signature)."""
    from gflow.layers.remat import recompute_scope
    from gflow.layers.shared_trace import shared_trace_scope
    c = self.config.train
    stack = contextlib.ExitStack()
    stack.enter_context(shared_trace_scope(self._shares_traces(),
                                           jit_compile=getattr(self, "_xla_modules", False)))
    stack.enter_context(recompute_scope(bool(c.get("remat", False)),
                                        xla=getattr(self, "_xla", False)))
    return stack

  def _shares_traces(self):
    """Whether checkpoint layers share one trace per signature in this run
    (`train.shared_traces`, unless replicas sync inside the forward pass)."""
    return (bool(self.config.train.get("shared_traces", False))
            and not self._replicas_sync_in_forward())

  def _plan_xla(self, jit):
    """Sets what XLA compiles in this run: `self._xla` (the step, or each replica's
    loss and gradients, as a whole) or `self._xla_modules` (`train.jit_scope="modules"`:
    each shared module trace on its own, forward and backward, the step around them a
    graph). `jit`: whether this run compiles at all."""
    modules = jit and self.config.train.get("jit_scope", "step") == "modules"
    self._xla = bool(jit) and not modules
    self._xla_modules = bool(modules) and self._shares_traces()

  @property
  def _autograph(self):
    """Whether the training functions are traced with autograph: the model says
    (`gflow.model`: `autograph`, default True)."""
    return bool(getattr(self.model, "autograph", True))

  def _replicas_sync_in_forward(self):
    """True when several replicas all-reduce inside the forward pass (synchronized
    BatchNorm): a shared trace is a nested function, which cannot hold MirroredStrategy's
    merge_call, so those runs unroll their modules."""
    return self.strategy.num_replicas_in_sync > 1 and _syncs_replicas(self.model.layer)

  def _finite(self, loss, grads):
    """True on every replica iff the loss and every gradient are finite on all replicas.

    One sum per gradient and one check of their total: a NaN or an Inf anywhere makes
    the total NaN or Inf (and so does a float32 overflow of the sums, which only
    gradients beyond ~1e38 / size reach: refusing that update is right too). Two
    operations per variable (`is_finite`, `reduce_all`) were ~7,000 of DenseFlow-74-10's
    step graph, for Grappler to optimise before the first step; the sums run in calls
    of up to 32 gradients (`gflow.train.chunked_calls`)."""
    values = [(g.values if isinstance(g, tf.IndexedSlices) else g,) for g in grads
              if g is not None]
    sums = [tf.reduce_sum(tf.cast(loss, tf.float32))] + call_in_chunks(_sum_of_sums, values)
    ok = tf.math.is_finite(total(sums))
    bad = tf.cast(tf.logical_not(ok), tf.float32)
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
      bad = ctx.all_reduce("sum", bad)
    return tf.equal(bad, 0.)

  def _can_gate(self, grads, groups=None):
    """True if every group's optimizer can gate its update (`apply_gated`)."""
    groups = self.groups if groups is None else groups
    start, ok = 0, True
    for opt, variables in groups:
      part = grads[start:start + len(variables)]
      ok = ok and hasattr(opt, "apply_gated") and opt.can_gate(part, variables)
      start += len(variables)
    return ok

  def _clipped(self, grads):
    """`grads` clipped by their global norm (`train.grad_clip_norm`; a loss-scaling
    optimizer's scaled gradients are not). Under several replicas the global gradient
    (summed over replicas) is clipped, as one replica would; the optimizer sums over
    replicas again, hence the division."""
    c = self.config.train
    if not c.grad_clip_norm or isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
      return grads
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    if replicas > 1:
      grads = tf.distribute.get_replica_context().all_reduce("sum", grads)
    grads, _ = clip_by_global_norm(grads, c.grad_clip_norm)
    if replicas > 1:
      grads = [g / replicas for g in grads]
    return grads

  def _apply(self, grads, groups=None, gate=None):
    """Applies `grads` (aligned with the variables of `groups`, [(optimizer,
    variables)], default all) with each group's optimizer, then the EMA; with
    `gate` (a scalar bool tensor), only where it is true (`apply_gated`)."""
    groups = self.groups if groups is None else groups
    start = 0
    for opt, variables in groups:
      part = grads[start:start + len(variables)]
      if gate is None:
        opt.apply(part, variables)
      else:
        opt.apply_gated(gate, part, variables)
      start += len(variables)
    if self.ema is not None:
      self.ema.update(gate)

  def _checked_apply(self, loss, grads, groups=None):
    """Applies the update only if the loss and all gradients are finite (decided on
    device, before anything is written); returns that flag. A loss-scaling
    optimizer (float16) handles overflow itself: it skips the step and lowers
    its scale, so only a non-finite loss stops that run.

    With gflow's fused optimizers the update is gated instead of branched
    (`FusedAdamax.apply_gated`: where the flag is false every write leaves its
    variable as it was, bit for bit): a `tf.cond` captures every variable, slot and
    gradient into its branch, which cost DenseFlow's start-up tens of seconds of
    tracing and graph optimisation. Otherwise:

    The flag is all-reduced, so every replica takes the same branch. Where the
    strategy synchronises through `merge_call` (MirroredStrategy), the branch is
    taken in cross-replica context (as Keras's LossScaleOptimizer does): a cond
    in replica context cannot hold the optimizer's own merge_call.
    """
    if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
      finite = self._finite(loss, [])
    else:
      # checked after clipping: a global norm that overflows makes the clipped gradients NaN
      grads = self._clipped(grads)
      finite = self._finite(loss, grads)
    if self._can_gate(grads, groups):  # the fused optimizers: no tf.cond (see below)
      self._apply(grads, groups, gate=finite)
      return finite

    def apply():
      self._apply(grads, groups)
      return tf.constant(True)
    if tf.__internal__.distribute.strategy_supports_no_merge_call():
      return tf.cond(finite, apply, lambda: tf.constant(False))

    def cross_replica(distribution, finite, grads):
      def apply_everywhere():
        distribution.extended.call_for_each_replica(self._apply, args=(grads, groups))
        return tf.constant(True)
      first = distribution.experimental_local_results(finite)[0]
      return tf.cond(first, apply_everywhere, lambda: tf.constant(False))
    return tf.distribute.get_replica_context().merge_call(cross_replica, args=(finite, grads))

  def _sync_replica_statistics(self):
    """Under several replicas, sets the statistics each replica moved on its own in the
    forward pass (BatchNorm over virtual batches) to their mean over replicas: one
    all-reduce, in replica context, outside any compiled function."""
    if self.strategy.num_replicas_in_sync > 1:
      if getattr(self, "_local_statistics", None) is None:
        self._local_statistics = replica_local_statistics(self.model.layer)
      sync_replica_statistics(self._local_statistics)

  def _replica_step(self, batch):
    loss, grads = self._loss_and_grads(batch)
    self._sync_replica_statistics()
    return loss, self._checked_apply(loss, grads)

  def _make_train_step(self):
    """The distributed step, returning (global loss, whether the update was applied).
    With `train.jit_compile`, XLA compiles the whole step on one device; with
    several replicas it compiles each replica's loss and gradients (cross-replica
    reductions cannot sit inside a nested compiled function), and the all-reduces
    (gradients; the statistics of BatchNorm over virtual batches) and the update run
    around it. A model whose forward pass itself syncs replicas (synchronized
    BatchNorm) then runs without XLA: DenseFlow's `model.virtual_batch_size` keeps
    it compiled. With `train.jit_scope="modules"` XLA compiles each shared module
    trace instead, and the step around them runs as a graph."""
    replica_step = self._replica_step
    jit = self.jit_compile
    if jit and self._replicas_sync_in_forward():
      self._log("XLA is off for this multi-replica run: the model's synchronized "
                "BatchNorm reduces over replicas inside the forward pass (BatchNorm over "
                "virtual batches, e.g. DenseFlow's model.virtual_batch_size, keeps it on).")
      jit = False
    if self.config.train.get("shared_traces", False) and self._replicas_sync_in_forward():
      self._log("Shared traces are off for this multi-replica run: the model's "
                "synchronized BatchNorm reduces over replicas inside each module.")
    self._plan_xla(jit)
    jit = self._xla
    if jit and self.strategy.num_replicas_in_sync == 1:
      replica_step = tf.function(self._replica_step, jit_compile=True,
                                 autograph=self._autograph)
    elif jit:
      compiled = {}  # per replica: a trace captures that replica's variable copies

      def replica_step(batch):
        ctx = tf.distribute.get_replica_context()
        rid = int(tf.get_static_value(ctx.replica_id_in_sync_group))
        if rid not in compiled:
          compiled[rid] = tf.function(self._loss_and_grads, jit_compile=True,
                                      autograph=self._autograph)
        loss, grads = compiled[rid](batch)
        self._sync_replica_statistics()
        return loss, self._checked_apply(loss, grads)

    @functools.partial(tf.function, autograph=self._autograph)
    def step(iterator):
      loss, applied = self.strategy.run(replica_step, args=(next(iterator),))
      # The flag is the same on every replica (per replica, or one merged value).
      applied = tf.reduce_all(tf.stack(self.strategy.experimental_local_results(applied)))
      return self.strategy.reduce("sum", loss, axis=None), applied
    return self._with_step_graph_options(step)

  def _with_step_graph_options(self, step):
    """`step`, called with Grappler's passes for its own graph as `train.step_graph`
    says (gflow.train.graph_options): "auto" optimises the glue around shared module
    traces lightly."""
    c = self.config.train
    shared = self._shares_traces() and not self._xla
    if resolve_step_graph(c.get("step_graph", "auto"), shared) == "light":
      return LightStep(step)
    return step

  def _parts_loss_and_grads(self, batch, phase):
    """(per-part losses [P] of this replica's share, gradients of the active groups): in a
    parts phase each active part's gradient comes from its own local loss only; end
    to end, every variable's from the model's loss."""
    active = phase.active
    with tf.GradientTape(persistent=True) as tape, self._recompute_scope():
      noise = self._noise(batch, _TRAIN_NOISE, self.global_batch)
      if phase.end_to_end:
        losses = [self.model.loss(batch, noise, training=True)]
      else:
        losses = self.model.part_losses(batch, noise, self.parts, training=True,
                                        upto=max(active) + 1)
      losses = [tf.reduce_sum(tf.cast(l, tf.float32)) / self.global_batch for l in losses]
    if phase.end_to_end:
      grads = tape.gradient(losses[0], [v for k in active for v in self.groups[k][1]])
      reported = tf.stack(losses * self.parts.num_parts)
    else:
      grads = [g for k in active for g in tape.gradient(losses[k], self.groups[k][1])]
      reported = tf.stack(losses + [tf.constant(float("nan"))] * (
          self.parts.num_parts - len(losses)))
    del tape
    return reported, grads

  def _make_parts_step(self, phase):
    """The distributed step of one phase: (per-part losses, applied?)."""
    groups = [self.groups[k] for k in phase.active]
    modules = self.config.train.get("jit_scope", "step") == "modules"
    jit = (self.jit_compile and self.strategy.num_replicas_in_sync == 1
           and (modules or not self.devices))  # XLA would compile every part onto one device
    self._plan_xla(jit)
    jit = self._xla

    def replica_step(batch):
      losses, grads = self._parts_loss_and_grads(batch, phase)
      self._sync_replica_statistics()
      total = tf.reduce_sum(tf.gather(losses, list(phase.active)))
      return losses, self._checked_apply(total, grads, groups)
    if jit:
      replica_step = tf.function(replica_step, jit_compile=True, autograph=self._autograph)

    @functools.partial(tf.function, autograph=self._autograph)
    def step(iterator):
      losses, applied = self.strategy.run(replica_step, args=(next(iterator),))
      applied = tf.reduce_all(tf.stack(self.strategy.experimental_local_results(applied)))
      return self.strategy.reduce("sum", losses, axis=None), applied
    return self._with_step_graph_options(step)

  # -- phase 5: evaluation and samples ---------------------------------------
  def evaluate(self, num_samples=1):
    """{figure: (mean, standard error)} over the test set (EMA weights if enabled)."""
    e = self.config.eval
    key = (num_samples, e.get("importance_chunk"))
    if self._eval_fn is None or self._eval_fn[0] != key:
      self._eval_fn = key, evaluation.Evaluator(self.model, *key,
                                                shared_traces=self._shares_traces())
    dataset = self.data.eval_dataset(e.batch_size, seed=self.config.seed + 2)
    with self._ema_weights():
      figures = self._eval_fn[1](dataset, self.config.seed + 4)
    return evaluation.summarize(figures)

  def samples(self, step):
    """`eval.num_samples` samples; a conditional model gets the conditioning of the
    first test examples (so its samples can be set beside them)."""
    c = self.config.eval
    conditioning = sample_conditioning(self.data, c.num_samples)
    n = c.num_samples if conditioning is None else len(conditioning)
    if self._sample_fn is None:
      from gflow.layers.shared_trace import shared_trace_scope
      shared = self._shares_traces()

      def generate(seed, cond):
        with shared_trace_scope(shared):  # the inverse's modules in shared traces
          return self.model.generate(n, seed=seed, temperature=c.temperature,
                                     conditioning=cond)
      self._sample_fn = tf.function(generate)
    with self._ema_weights():
      return self._sample_fn(tf.constant([self.config.seed + 3, step], tf.int32),
                             conditioning).numpy()

  def _ema_weights(self):
    return contextlib.nullcontext() if self.ema is None else self.ema.swapped()

  # -- the loop ----------------------------------------------------------------
  def train(self):
    """Trains to `train.num_steps`; returns the final evaluation {figure: (mean, stderr)}.

    Holds the workdir's lock throughout (one training per workdir). SIGINT/SIGTERM
    save a checkpoint after the current step and raise TrainingInterrupted.
    """
    lock = workdir_lock(self.workdir) if self.chief else contextlib.nullcontext()
    with lock, StopRequests() as stop:
      return self._train(stop)

  def _train(self, stop):
    c = self.config.train
    started = time.perf_counter()
    self.check_resume_config()
    start = self.restore()
    self.save_config()
    if start == 0 and self.init_from:
      self._load_weights(self.init_from)
    progress = self._progress = Progress(start, c.num_steps)
    initialized_here = not self.model.is_initialized()
    if self.parts is not None:
      if initialized_here:
        self.initialize()
      self._check_phase(start)
    elif self._train_step is None:
      self._train_step = self._make_train_step()
    iterator = iter(self._dataset(self.global_batch, start))
    if initialized_here and self.parts is None:
      # Nothing in the step's trace depends on the init's values: trace it now, and
      # let TensorFlow instantiate it in the background while the init runs.
      train_step = self._train_step
      concrete = train_step.get_concrete_function(iterator)
      options = train_step.call_options() if isinstance(train_step, LightStep) else None
      with instantiating(concrete, (iterator,), options):
        self.initialize()
    name = self.model.loss_name
    for step in range(start + 1, c.num_steps + 1):
      # the first step may load XLA's programs from its cache (gflow.xla_cache)
      with harmless_lines_hidden() if step == start + 1 else contextlib.nullcontext():
        if self.parts is None:
          loss, applied = self._train_step(iterator)
          loss, applied = _as_float(loss), bool(np.asarray(applied))
          logged = {f"loss ({name})": loss}
        else:
          loss, applied, logged = self._parts_step(step, iterator)
      if step == start + 1:  # tracing and compiling: not part of steps/s and the ETA
        what = ("data-dependent init, " if initialized_here else "") + "tracing" + (
            " and XLA compiling" if getattr(self, "_xla", False)
                                    or getattr(self, "_xla_modules", False) else "")
        self._log(f"First step ({what}) took {progress.restart(step):.1f} s.")
      if not applied or not math.isfinite(loss):
        last = self.manager.latest_checkpoint
        what = (f"Loss is {loss}" if not math.isfinite(loss)
                else f"A gradient is NaN or Inf (loss {loss:.4f})")
        raise TrainingDiverged(
            f"{what} at step {step}: stopped before applying the update, without saving. "
            f"The last good checkpoint is {last or 'none (no checkpoint was written yet)'}; "
            f"lower train.learning_rate or set train.grad_clip_norm and run again to resume.")
      self.step.assign(step)
      if step % c.log_every == 0 or step == c.num_steps:
        self._log(progress.line(step, logged))
        self._scalars(step, {"train/loss": loss,
                             "train/learning_rate": _as_float(self.optimizer.learning_rate),
                             "train/steps_per_sec": progress.steps_per_sec})
      if step % c.checkpoint_every == 0 or step == c.num_steps:
        self.save()
      if step % c.eval_every == 0 and step != c.num_steps:
        self._eval_and_log(step)
        progress.restart(step)  # steps/s and the ETA count training steps only
      if step % c.sample_every == 0 and step != c.num_steps:
        self._write_samples(step)
        progress.restart(step)
      if stop.signum is not None and step < c.num_steps:
        self.save()
        raise TrainingInterrupted(stop.signum, (
            f"Stopped at step {step} of {c.num_steps} and saved {self.manager.latest_checkpoint}; "
            "run the same command to resume."))
    final_step = int(self.step.numpy())
    if start < c.num_steps:
      self._write_samples(final_step)
    summary = self._eval_and_log(final_step)
    self._log_summary(start, final_step, time.perf_counter() - started, summary)
    return summary

  def _parts_step(self, step, iterator):
    """One step of the phase that `step` is in: (loss, applied, {log name: value}); a new
    phase is announced, and recorded in the checkpointed state."""
    phase = self.schedule.at(step)
    if phase != self._phase:
      last = self.schedule.segments(step)[0][1]
      self._log(f"Steps {step}–{last}: {phase.describe(self.parts.num_parts)} "
                f"({self.config.parts.schedule}).")
      self._phase = phase
    traced = phase not in self._phase_fns
    if traced:
      self._phase_fns[phase] = self._make_parts_step(phase)
    started = time.perf_counter()
    losses, applied = self._phase_fns[phase](iterator)
    if traced and step > self._progress.start + 1:
      self._log(f"First step of the phase (tracing) took {time.perf_counter() - started:.1f} s.")
      self._progress.restart(step)
    losses = np.asarray(losses, np.float64)
    self.phase_state.assign([int(phase.end_to_end), phase.active[0]])
    name = self.model.loss_name
    if phase.end_to_end:
      return float(losses[0]), bool(np.asarray(applied)), {f"loss ({name})": float(losses[0])}
    logged = {f"part {k + 1} loss ({name})": float(losses[k]) for k in phase.active}
    return float(sum(losses[k] for k in phase.active)), bool(np.asarray(applied)), logged

  def _check_phase(self, start):
    """A resumed run's checkpointed phase must be the schedule's at its step."""
    if start == 0:
      return
    phase = self.schedule.at(start)
    saved = [int(v) for v in self.phase_state.numpy()]
    if saved != [int(phase.end_to_end), phase.active[0]]:
      raise resume_config.ConfigChanged(
          f"The checkpoint of step {start} was in phase (end to end: {bool(saved[0])}, part "
          f"{saved[1] + 1}), but the schedule of this config puts step {start} in "
          f"{phase.describe(self.parts.num_parts)}: train.num_steps or parts.* changed the "
          "schedule. Resume with the config the run was trained with.")

  def _eval_and_log(self, step):
    summary = self.evaluate()
    for line in evaluation.format_figures(summary, self.model.figure_units):
      self._log(f"step {step}: {line}")
    self._scalars(step, {f"eval/{k}": mean for k, (mean, _) in summary.items()})
    if self.chief:
      name = next(iter(summary))
      if self.best.offer(step, name, summary[name][0],
                         name in getattr(self.model, "higher_is_better", ())):
        self._log(f"Saved {self.best.path} (best {name} so far)")
    return summary

  def _log_summary(self, start, step, seconds, summary):
    name = next(iter(summary))
    unit = self.model.figure_units.get(name, "")
    unit = f" {unit}" if unit else ""
    line = (f"Done: steps {start}→{step} in {datetime.timedelta(seconds=int(seconds))}; "
            f"final test {name} {summary[name][0]:.4f}{unit}")
    if self.chief and self.best.record:
      best = self.best.record
      line += f", best {best['value']:.4f}{unit} at step {best['step']}"
    self._log(f"{line}.")
    cache = ("xla_cache/ (XLA's compiled programs, for the next run), "
             if os.path.isdir(os.path.join(self.workdir, "xla_cache")) else "")
    self._log(f"Files in {self.workdir}: checkpoints/ (the last {self.config.train.keep_checkpoints}"
              f", and best/), samples/, tensorboard/, {cache}config.json.")

  def _write_samples(self, step):
    if not self.chief:
      return
    samples = self.samples(step)
    paths = self.model.outputs.write(
        samples, os.path.join(self.workdir, "samples", f"step_{step:07d}"))
    with self._summary_writer().as_default(step=step):
      self.model.outputs.summary(samples, step)
    self._log(f"Wrote {paths[0]}" + (f" (+{len(paths) - 1} files)" if len(paths) > 1 else ""))

  # -- outputs -----------------------------------------------------------------
  def check_resume_config(self):
    """Before anything is written: if the workdir holds checkpoints of a run, the
    config may only change what does not alter its model or data (see
    `resume_config`); the changes it makes are printed."""
    path = os.path.join(self.workdir, CONFIG_FILE)
    if not self.chief or not os.path.isfile(path) or not os.path.isdir(self.checkpoint_dir):
      return
    if not any(n.endswith(".index") for n in os.listdir(self.checkpoint_dir)):
      return  # no checkpoint: nothing to continue, the run starts afresh
    with open(path) as f:
      try:
        saved = json.load(f)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path} is damaged ({e}); restore it, or use a new --workdir.") from None
    changes = resume_config.compare(saved, self.config, self.workdir)
    run_path = os.path.join(self.workdir, RUN_FILE)
    if os.path.isfile(run_path):
      with open(run_path) as f:
        run = json.load(f)
      now = self._run_info()
      differ = [f"{k}: {run[k]!r} → {now[k]!r}" for k in ("data", "event_shape", "num_train",
                                                          "num_test") if run.get(k) != now[k]]
      if differ:
        raise resume_config.ConfigChanged(
            f"{self.workdir} holds a run trained on other data ({'; '.join(differ)}); "
            "use the same data, or a new --workdir.")
    if changes:
      self._log("Resuming with config changes: " + "; ".join(changes))

  def save_config(self):
    """The resolved config (seed included) and what the model was built for."""
    if not self.chief:
      return
    with open(os.path.join(self.workdir, CONFIG_FILE), "w") as f:
      f.write(self.config.to_json_best_effort(indent=2, sort_keys=True))
    with open(os.path.join(self.workdir, RUN_FILE), "w") as f:
      json.dump(self._run_info(), f, indent=2)

  def _run_info(self):
    return dict(event_shape=list(self.data.event_shape), data=self.data.name,
                num_train=self.data.num_train, num_test=self.data.num_test,
                num_replicas=self.strategy.num_replicas_in_sync,
                conditional="conditioning" in self.data.element_spec)

  def _summary_writer(self):
    if self._writer is None:
      self._writer = tf.summary.create_file_writer(os.path.join(self.workdir, "tensorboard"))
    return self._writer

  def _scalars(self, step, values):
    if not self.chief:
      return
    with self._summary_writer().as_default(step=step):
      for k, v in values.items():
        tf.summary.scalar(k, v)

  def _log(self, message):
    if self.verbose and message:
      print(message, flush=True)


def sample_conditioning(data, n):
  """The conditioning of the first `n` test examples, or None for unconditional data."""
  if "conditioning" not in data.element_spec:
    return None
  batch = next(iter(data.eval_dataset(n, seed=0, limit=n)))
  return batch["conditioning"]


def _sum_of_sums(rows):
  """The float32 total of the sums of the rows' tensors (each summed in its dtype)."""
  return total(tf.cast(tf.reduce_sum(t), tf.float32) for t, in rows)


def _syncs_replicas(layer):
  """True if a sub-layer all-reduces in its forward pass (synchronized BatchNorm),
  the modules of a `gflow.layers.StackedFlow` (its untracked template) included."""
  for sub in layer._flatten_layers():
    template = getattr(sub, "template", None)
    if getattr(sub, "synchronized", False) or (
        isinstance(template, keras.layers.Layer) and _syncs_replicas(template)):
      return True
  return False


def finetune_config(config):
  """The config of a fine-tuning phase after `config`'s training: a constant
  `train.finetune_learning_rate` (default 2e-5, DenseFlow's) for
  `train.finetune_steps` (default a tenth of the training steps)."""
  c = config.copy_and_resolve_references()
  t = c.train
  lr = t.get("finetune_learning_rate", 2e-5)
  steps = t.get("finetune_steps", max(1, t.num_steps // 10))
  with c.unlocked():
    t.learning_rate, t.num_steps = lr, steps
    t.warmup_steps, t.decay_rate, t.decay_staircase = 0, 1.0, False
  return c


def load_run(workdir):
  """(config, run info) that a `gflow-train` run saved in `workdir`."""
  import ml_collections
  paths = [os.path.join(workdir, f) for f in (CONFIG_FILE, RUN_FILE)]
  for path in paths:
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path} does not exist: is {workdir!r} a gflow-train workdir?")
  with open(paths[0]) as f:
    config = ml_collections.ConfigDict(json.load(f))
  with open(paths[1]) as f:
    return config, json.load(f)
