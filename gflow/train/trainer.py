"""The training loop, in phases: data, model, step, checkpoint, evaluation.

    trainer = Trainer(config, workdir, strategy)
    trainer.train()            # resumes from the last checkpoint if there is one
    trainer.evaluate()         # test bits/dim

Everything random is a stateless function of (config.seed, step), so a killed
run that restarts from its last checkpoint continues exactly as the
uninterrupted run would have.
"""

import contextlib
import json
import math
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from gflow import data as gdata
from gflow import registry
from gflow.flows.noise import Noise
from gflow.io.images import save_png
from gflow.train.checkpoint import check_model_entries, model_variables
from gflow.train.ema import EMA
from gflow.train.progress import Progress
from gflow.train.schedule import WarmupExponentialDecay

__all__ = ["Trainer", "TrainingDiverged", "build_model", "load_run", "eval_bits_per_dim",
           "finetune_config", "importance_weighted_bits_per_dim",
           "CONFIG_FILE", "RUN_FILE"]

CONFIG_FILE = "config.json"
RUN_FILE = "run.json"  # what the model was built for (event shape, data)
_TRAIN_NOISE, _INIT_NOISE = 1, 2  # noise streams (augmentation, dequantization)
OPTIMIZERS = {"adam": keras.optimizers.Adam, "adamax": keras.optimizers.Adamax}
POLICIES = ("", "float32", "mixed_bfloat16", "mixed_float16")


class TrainingDiverged(RuntimeError):
  """The loss became NaN or Inf; nothing after the last good checkpoint was saved."""


def build_model(config, event_shape):
  """The model that `config.model.name` names, from its plugin."""
  policy = config.model.get("network_dtype", "")
  if policy not in POLICIES:
    raise ValueError(f"config.model.network_dtype must be one of {POLICIES}; got {policy!r}.")
  return registry.get_model_builder(config.model.name)(config.model, tuple(event_shape))


def _as_float(x):
  return float(np.asarray(x))


class Trainer:
  """Trains the model of `config` in `workdir` under `strategy`."""

  def __init__(self, config, workdir, strategy=None, verbose=True, init_from=None):
    self.config = config
    self.workdir = workdir
    self.init_from = init_from  # a trained workdir whose weights start this run
    self.strategy = strategy or tf.distribute.get_strategy()
    self.chief = self.strategy.extended.should_checkpoint
    self.verbose = verbose and self.chief
    self.global_batch = config.train.batch_size
    os.makedirs(workdir, exist_ok=True)
    self._setup_data()
    self._setup_model()
    self._setup_checkpoint()
    self._train_step = self._eval_fn = self._sample_fn = None
    self._writer = None

  # -- phase 1: data ---------------------------------------------------------
  def _setup_data(self):
    self.data = gdata.load(self.config.data)
    if self.global_batch % self.strategy.num_replicas_in_sync:
      raise ValueError(f"train.batch_size {self.global_batch} must be divisible by the "
                       f"{self.strategy.num_replicas_in_sync} replicas.")

  def _dataset(self, global_batch, start_step, seed_offset=0):
    return gdata.distribute(
        self.strategy,
        lambda: gdata.train_dataset(self.data.train, global_batch,
                                    self.config.seed + seed_offset, start_step),
        global_batch)

  # -- phase 2: model and optimizer ------------------------------------------
  def _setup_model(self):
    c = self.config.train
    if c.optimizer not in OPTIMIZERS:
      raise ValueError(f"Unknown optimizer {c.optimizer!r}; choose one of {sorted(OPTIMIZERS)}.")
    keras.utils.set_random_seed(self.config.seed)  # weight initialisers
    with self.strategy.scope():
      self.model = build_model(self.config, self.data.event_shape)
      self.variables = list(self.model.trainable_variables)
      schedule = WarmupExponentialDecay(c.learning_rate, c.warmup_steps, c.decay_rate,
                                        c.decay_steps, c.get("decay_staircase", False))
      opt = OPTIMIZERS[c.optimizer](learning_rate=schedule)
      if self.config.model.get("network_dtype") == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
      # Slots are created here, in the strategy's scope: lazily inside
      # `strategy.run` they would fail.
      opt.build(self.variables)
      self.optimizer = opt
      self.ema = EMA(self.variables, c.ema_decay) if c.ema_decay else None
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

  # -- phase 3: checkpoints --------------------------------------------------
  def _setup_checkpoint(self):
    items = dict(model=model_variables(self.model.layer), optimizer=self.optimizer,
                 step=self.step)
    if self.ema is not None:
      items["ema"] = self.ema
    self.checkpoint = tf.train.Checkpoint(**items)
    directory = os.path.join(self.workdir, "checkpoints")
    if not self.chief:  # other workers write (and then drop) a private copy
      directory = tempfile.mkdtemp(prefix="gflow_worker_ckpt_")
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, directory, max_to_keep=self.config.train.keep_checkpoints)

  def restore(self):
    """Restores the last checkpoint if any; returns its step (0 for a new run)."""
    path = self.manager.latest_checkpoint
    if path is None and not self.chief:
      path = tf.train.latest_checkpoint(os.path.join(self.workdir, "checkpoints"))
    if path:
      check_model_entries(path, self.checkpoint.model)
      self.checkpoint.restore(path).assert_existing_objects_matched()
      self._log(f"Resumed from {path} (step {int(self.step.numpy())}).")
    return int(self.step.numpy())

  def _load_weights(self, workdir):
    """The model (and EMA) weights of another run's last checkpoint; the
    optimizer and step start afresh (fine-tuning)."""
    path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if path is None:
      raise FileNotFoundError(f"{workdir!r} has no checkpoint to fine-tune from.")
    check_model_entries(path, self.checkpoint.model)
    items = dict(model=self.checkpoint.model)
    if self.ema is not None:
      items["ema"] = self.ema
    tf.train.Checkpoint(**items).restore(path).expect_partial()
    self._log(f"Fine-tuning from {path}.")

  def save(self):
    self.manager.save(checkpoint_number=int(self.step.numpy()))

  # -- phase 4: the step -----------------------------------------------------
  def initialize(self):
    """ActNorm's data-dependent init on one global batch, reduced over replicas."""
    n = min(self.config.train.init_batch_size, len(self.data.train))
    n -= n % self.strategy.num_replicas_in_sync
    batch = next(iter(self._dataset(n, 0, seed_offset=1)))

    def init(x):
      return self.model.initialize(x, seed=self._noise(x, _INIT_NOISE, n))
    self.strategy.run(tf.function(init), args=(batch,))
    self._log(f"Initialised from data ({n} images).")

  def _noise(self, x, stream, global_batch):
    """This replica's rows of the noise of a global batch: a stateless function of
    (config.seed, stream, step), so a resumed run and any number of replicas draw
    what one uninterrupted replica would."""
    seed = tf.stack([tf.constant(self.config.seed, tf.int32),
                     tf.cast(self.step, tf.int32) + 1])
    seed = tf.random.experimental.stateless_fold_in(seed, stream)
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
      return Noise(seed)
    offset = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * tf.shape(x)[0]
    return Noise(seed, offset=offset, global_batch=global_batch)

  def _loss_and_grads(self, x):
    """This replica's share of the loss and its gradients (no cross-replica sync)."""
    with tf.GradientTape() as tape:
      noise = self._noise(x, _TRAIN_NOISE, self.global_batch)
      bpd = self.model.bits_per_dim(x, seed=noise, training=True)
      loss = tf.reduce_sum(bpd) / self.global_batch
      scaled = self.optimizer.scale_loss(loss)
    return loss, tape.gradient(scaled, self.variables)

  def _apply(self, grads):
    c = self.config.train
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    if c.grad_clip_norm and not isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
      # Clip the global gradient (summed over replicas), as one replica would.
      # The optimizer sums over replicas again, hence the division.
      if replicas > 1:
        grads = tf.distribute.get_replica_context().all_reduce("sum", grads)
      grads, _ = tf.clip_by_global_norm(grads, c.grad_clip_norm)
      if replicas > 1:
        grads = [g / replicas for g in grads]
    self.optimizer.apply(grads, self.variables)
    if self.ema is not None:
      self.ema.update()

  def _replica_step(self, x):
    loss, grads = self._loss_and_grads(x)
    self._apply(grads)
    return loss

  def _make_train_step(self):
    """The distributed step. With `train.jit_compile`, XLA compiles the whole
    step on one device; with several replicas it compiles each replica's loss
    and gradients (cross-replica reductions cannot sit inside a nested
    compiled function), and the all-reduce and update run around it. A model
    whose forward pass itself syncs replicas (synchronized BatchNorm) then runs
    without XLA."""
    replica_step = self._replica_step
    jit = self.config.train.jit_compile
    if jit and self.strategy.num_replicas_in_sync > 1 and _syncs_replicas(self.model.layer):
      self._log("XLA is off for this multi-replica run: the model's synchronized "
                "BatchNorm reduces over replicas inside the forward pass.")
      jit = False
    if jit and self.strategy.num_replicas_in_sync == 1:
      replica_step = tf.function(self._replica_step, jit_compile=True)
    elif jit:
      compiled = {}  # per replica: a trace captures that replica's variable copies

      def replica_step(x):
        ctx = tf.distribute.get_replica_context()
        rid = int(tf.get_static_value(ctx.replica_id_in_sync_group))
        if rid not in compiled:
          compiled[rid] = tf.function(self._loss_and_grads, jit_compile=True)
        loss, grads = compiled[rid](x)
        self._apply(grads)
        return loss

    @tf.function
    def step(iterator):
      losses = self.strategy.run(replica_step, args=(next(iterator),))
      return self.strategy.reduce("sum", losses, axis=None)
    return step

  # -- phase 5: evaluation and samples ---------------------------------------
  def evaluate(self):
    """Test bits/dim (EMA weights if enabled): mean over the test images."""
    if self._eval_fn is None:
      self._eval_fn = tf.function(self.model.bits_per_dim)
    with self._ema_weights():
      return float(eval_bits_per_dim(self._eval_fn, self.data.test, self.config).mean())

  def samples(self, step):
    c = self.config.eval
    if self._sample_fn is None:
      self._sample_fn = tf.function(lambda seed: self.model.quantize(
          self.model.sample(c.num_samples, seed=seed, temperature=c.temperature)))
    with self._ema_weights():
      return self._sample_fn(tf.constant([self.config.seed + 3, step], tf.int32)).numpy()

  def _ema_weights(self):
    return contextlib.nullcontext() if self.ema is None else self.ema.swapped()

  # -- the loop ----------------------------------------------------------------
  def train(self):
    """Trains to `train.num_steps`; returns the final test bits/dim."""
    c = self.config.train
    self.save_config()
    start = self.restore()
    if start == 0 and self.init_from:
      self._load_weights(self.init_from)
    if not self.model.is_initialized():
      self.initialize()
    if self._train_step is None:
      self._train_step = self._make_train_step()
    iterator = iter(self._dataset(self.global_batch, start))
    progress = Progress(start, c.num_steps)
    for step in range(start + 1, c.num_steps + 1):
      loss = _as_float(self._train_step(iterator))
      self.step.assign(step)
      if not math.isfinite(loss):
        last = self.manager.latest_checkpoint
        raise TrainingDiverged(
            f"Loss is {loss} at step {step}: stopped without saving. The last good "
            f"checkpoint is {last or 'none (no checkpoint was written yet)'}; lower "
            f"train.learning_rate or set train.grad_clip_norm and run again to resume.")
      if step % c.log_every == 0 or step == c.num_steps:
        metrics = {"loss": loss, "bits/dim": loss}
        self._log(progress.line(step, metrics))
        self._scalars(step, {"train/bits_per_dim": loss,
                             "train/learning_rate": _as_float(
                                 self.optimizer.learning_rate),
                             "train/steps_per_sec": progress.steps_per_sec})
      if step % c.checkpoint_every == 0 or step == c.num_steps:
        self.save()
      if step % c.eval_every == 0 and step != c.num_steps:
        self._eval_and_log(step)
      if step % c.sample_every == 0 and step != c.num_steps:
        self._write_samples(step)
    final_step = int(self.step.numpy())
    if start < c.num_steps:
      self._write_samples(final_step)
    return self._eval_and_log(final_step)

  def _eval_and_log(self, step):
    bpd = self.evaluate()
    self._log(f"step {step}: test bits/dim {bpd:.4f}")
    self._scalars(step, {"eval/test_bits_per_dim": bpd})
    return bpd

  def _write_samples(self, step):
    if not self.chief:
      return
    images = self.samples(step)
    os.makedirs(os.path.join(self.workdir, "samples"), exist_ok=True)
    path = os.path.join(self.workdir, "samples", f"step_{step:07d}.png")
    upscale = max(1, 64 // images.shape[1])
    save_png(path, images, upscale=upscale)
    with self._summary_writer().as_default(step=step):
      tf.summary.image("samples", images[: min(16, len(images))], max_outputs=16)
    self._log(f"Wrote {path}")

  # -- outputs -----------------------------------------------------------------
  def save_config(self):
    """The resolved config (seed included) and what the model was built for."""
    if not self.chief:
      return
    with open(os.path.join(self.workdir, CONFIG_FILE), "w") as f:
      f.write(self.config.to_json_best_effort(indent=2, sort_keys=True))
    run = dict(event_shape=list(self.data.event_shape), data=self.data.name,
               num_train=len(self.data.train), num_test=len(self.data.test),
               num_replicas=self.strategy.num_replicas_in_sync)
    with open(os.path.join(self.workdir, RUN_FILE), "w") as f:
      json.dump(run, f, indent=2)

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
    if self.verbose:
      print(message, flush=True)


def _syncs_replicas(layer):
  """True if a sub-layer all-reduces in its forward pass (synchronized BatchNorm)."""
  return any(getattr(sub, "synchronized", False) for sub in layer._flatten_layers())


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


def eval_bits_per_dim(bits_per_dim, test_images, config, batch_size=None):
  """Per-image bits/dim of the test set, dequantized with the run's fixed eval
  noise (so training and `gflow-eval` print the same figure)."""
  ds = gdata.eval_dataset(test_images, batch_size or config.eval.batch_size,
                          seed=config.seed + 2)
  return np.concatenate([np.asarray(bits_per_dim(x)) for x in ds])


def importance_weighted_bits_per_dim(model, test_images, config, num_samples, chunk_size=None,
                                    batch_size=None, seed=None):
  """Per-image bits/dim from K joint samples of all the model's noise
  (logsumexp − log K), evaluated `chunk_size` samples at a time, BatchNorm in
  inference mode. Deterministic given the run's seed."""
  if not hasattr(model, "log_likelihood"):
    raise ValueError(f"{model.name} has no noise to importance-sample: its bits/dim is "
                     f"exact (use num_importance_samples=1).")
  chunk = chunk_size or config.eval.get("importance_chunk", 50)
  batch = batch_size or max(1, config.eval.batch_size // min(chunk, num_samples))
  seed = config.seed + 4 if seed is None else seed
  out = []
  for i in range(0, len(test_images), batch):
    x = tf.constant(test_images[i:i + batch])
    bpd = model.bits_per_dim(x, seed=[seed, i], num_samples=num_samples, chunk_size=chunk)
    out.append(np.asarray(bpd))
  return np.concatenate(out)


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
