"""Channel swap as a flow layer (no variables)."""

from gflow.bijectors.channel_swap import ChannelSwap
from gflow.layers.base import FlowLayer

__all__ = ["ChannelSwapLayer"]


class ChannelSwapLayer(FlowLayer):
  """Exchanges the halves of the channel axis ([x₁, x₂] → [x₂, x₁])."""

  def build(self, input_shape):
    if input_shape[-1] is None or input_shape[-1] < 2:
      raise ValueError(f"ChannelSwapLayer needs >= 2 known channels; got {input_shape}.")

  def bijector(self, conditioning=None):
    return ChannelSwap(name=self.name)
