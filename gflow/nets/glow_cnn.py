"""Glow's coupling network: 3x3 conv → ReLU → 1x1 conv → ReLU → zero-initialised 3x3 conv."""

import keras

from gflow.nets.conditioning import concat_conditioning
from gflow.nets.conv2d import Conv2D
from gflow.nets.modulation import NO_MODULATION
from gflow.nets.zero_conv import ZeroConv2D

__all__ = ["GlowCNN"]


@keras.saving.register_keras_serializable(package="gflow")
class GlowCNN(keras.layers.Layer):
  """The coupling network NN(x₁) of Kingma & Dhariwal (2018), Fig. 2 / Table 1.

  3x3 conv (`width`) → ReLU → 1x1 conv (`width`) → ReLU → ZeroConv2D 3x3
  (`out_channels`). The last layer starts at zero, so the coupling that uses it
  starts as a fixed map. Pass `dtype="mixed_bfloat16"` (or any Keras dtype
  policy) to run it in reduced precision; couplings cast its output to float32.
  With `conditioning_channels` > 0, `call(x, conditioning=c)` concatenates c
  ([N, H, W, that many channels]) to x₁ before the first conv.

  Shared by several flows (`gflow.nets.sharing`), `head=False` builds the body
  only: `features` gives the `width` hidden maps, with the flow's modulation at
  both hidden layers' pre-activations (points 0 and 1).
  """

  head_kernel_size = 3

  def __init__(self, out_channels, width=512, conditioning_channels=0, head=True, **kwargs):
    super().__init__(**kwargs)
    if out_channels < 1 or width < 1 or conditioning_channels < 0:
      raise ValueError(f"GlowCNN needs positive out_channels and width; got "
                       f"{out_channels} and {width} (conditioning_channels "
                       f"{conditioning_channels}).")
    self.out_channels = out_channels
    self.width = width
    self.conditioning_channels = conditioning_channels
    self.head = head
    policy = self.dtype_policy
    self.conv1 = Conv2D(width, 3, padding="same", dtype=policy)
    self.conv2 = Conv2D(width, 1, dtype=policy)
    self.out = ZeroConv2D(out_channels, 3, dtype=policy) if head else None

  @property
  def feature_channels(self):
    return self.width

  @property
  def modulation_widths(self):
    return {"bias": (self.width, self.width), "gate": (self.width, self.width)}

  def build(self, input_shape):
    self.conv1.build(tuple(input_shape[:-1]) + (input_shape[-1] + self.conditioning_channels,))
    hidden = tuple(input_shape[:-1]) + (self.width,)
    self.conv2.build(hidden)
    if self.out is not None:
      self.out.build(hidden)

  def features(self, x, conditioning=None, modulation=None, training=None):
    """The hidden maps [..., width] before the output convolution."""
    m = modulation or NO_MODULATION
    h = concat_conditioning(self, x, conditioning, self.conditioning_channels)
    for j, conv in enumerate((self.conv1, self.conv2)):
      h = keras.ops.relu(m.gate(j, m.bias(j, conv(h))))
    return h

  def call(self, x, conditioning=None):
    if self.out is None:
      raise ValueError(f"{self.name} was built without its head (head=False): call "
                       "features(), or share it through gflow.nets.sharing.")
    return self.out(self.features(x, conditioning))

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.out_channels,)

  def get_config(self):
    return {**super().get_config(), "out_channels": self.out_channels,
            "width": self.width, "conditioning_channels": self.conditioning_channels,
            "head": self.head}
