"""DenseFlow's intra-unit coupling network: dense block ‖ Nyström attention, fused."""

import keras

from gflow.nets.batch_norm import BatchNormalization
from gflow.nets.conv2d import Conv2D
from gflow.nets.dense_block import DenseBlock
from gflow.nets.modulation import NO_MODULATION
from gflow.nets.nystrom_attention import NystromAttention

__all__ = ["DenseFlowCouplingNet"]


@keras.saving.register_keras_serializable(package="gflow")
class DenseFlowCouplingNet(keras.layers.Layer):
  """x₁ → 1x1 conv (`width`) → [DenseBlock ‖ NystromAttention] → BatchNorm → ReLU →
  1x1 conv (`width`, no bias) → zero-initialised 1x1 conv (`out_channels`)
  (Grcić et al. 2021, Fig. 2: the branches are "blended through a BN-ReLU-Conv unit",
  whose output parameterises the coupling; as the authors' code, 130,647,294
  parameters in DenseFlow-74-10).

  The dense block captures local correlations, the attention the global
  context; `attention=False` keeps the dense branch only (the ablation).
  BatchNorm is synchronized: under `tf.distribute` it normalises by the
  statistics of the global batch; with `virtual_batch_size` = v it normalises
  each run of v examples on its own instead (`gflow.nets.batch_norm`: nothing
  is all-reduced in the forward pass, so several replicas keep XLA and shared
  traces, and compute what one replica does). The last layer starts at zero, so a
  coupling using this network starts as the identity.

  Shared by several flows (`gflow.nets.sharing`), `head=False` builds the body
  only: `features` gives the blended maps; a flow's modulation acts on the
  projected input (point 0, `width`) and on the normalised fused maps before the
  ReLU (point 1).
  """

  head_kernel_size = 1

  def __init__(self, out_channels, width=48, depth=7, growth=64, embed_dim=24,
               num_landmarks=4, pinv_iterations=6, attention=True, head=True,
               virtual_batch_size=None, **kwargs):
    super().__init__(**kwargs)
    if out_channels < 1 or width < 1:
      raise ValueError(f"DenseFlowCouplingNet needs positive out_channels and width; got "
                       f"{out_channels} and {width}.")
    self.out_channels, self.width, self.depth, self.growth = out_channels, width, depth, growth
    self.embed_dim, self.num_landmarks = embed_dim, num_landmarks
    self.pinv_iterations, self.attention = pinv_iterations, attention
    self.virtual_batch_size = virtual_batch_size or None
    policy = self.dtype_policy
    self.project = Conv2D(width, 1, dtype=policy, name="project")
    self.dense = DenseBlock(width, depth, growth, gated=True, dtype=policy, name="dense")
    self.attend = (NystromAttention(width, embed_dim, num_landmarks, pinv_iterations,
                                    dtype=policy, name="attention") if attention else None)
    self.norm = BatchNormalization(synchronized=not self.virtual_batch_size,
                                   virtual_batch_size=self.virtual_batch_size,
                                   dtype=policy, name="norm")
    self.blend = Conv2D(width, 1, use_bias=False, dtype=policy, name="blend")
    self.head = head
    self.out = (Conv2D(out_channels, 1, kernel_initializer="zeros", dtype=policy, name="out")
                if head else None)

  @property
  def fused_channels(self):
    return 2 * self.width if self.attention else self.width

  @property
  def feature_channels(self):
    return self.width

  @property
  def modulation_widths(self):
    widths = (self.width, self.fused_channels)
    return {"bias": widths, "gate": widths}

  def build(self, input_shape):
    rest = tuple(input_shape[:-1])
    self.project.build(input_shape)
    self.dense.build(rest + (self.width,))
    fused = self.width
    if self.attend is not None:
      self.attend.build(rest + (self.width,))
      fused += self.width
    self.norm.build(rest + (fused,))
    self.blend.build(rest + (fused,))
    if self.out is not None:
      self.out.build(rest + (self.width,))

  def features(self, x, conditioning=None, modulation=None, training=None):
    """The blended maps (BatchNorm → ReLU → 1x1 conv), before the output convolution."""
    if conditioning is not None:
      raise ValueError(f"{self.name} takes no conditioning input.")
    m = modulation or NO_MODULATION
    h = m.gate(0, m.bias(0, self.project(x)))
    branches = [self.dense(h)]
    if self.attend is not None:
      branches.append(self.attend(h))
    h = keras.ops.concatenate(branches, axis=-1) if len(branches) > 1 else branches[0]
    return self.blend(keras.ops.relu(m.gate(1, m.bias(1, self.norm(h, training=training)))))

  def call(self, x, training=None):
    if self.out is None:
      raise ValueError(f"{self.name} was built without its head (head=False): call "
                       "features(), or share it through gflow.nets.sharing.")
    return self.out(self.features(x, training=training))

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.out_channels,)

  def get_config(self):
    return {**super().get_config(), "out_channels": self.out_channels, "width": self.width,
            "depth": self.depth, "growth": self.growth, "embed_dim": self.embed_dim,
            "num_landmarks": self.num_landmarks, "pinv_iterations": self.pinv_iterations,
            "attention": self.attention, "head": self.head,
            "virtual_batch_size": self.virtual_batch_size}
