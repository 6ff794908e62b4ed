"""NCSNv2's score network (Song & Ermon 2020): a RefineNet with ELU and InstanceNorm++."""

import keras

from gflow.nets.instance_norm_plus import InstanceNormPlus
from gflow.nets.refine_blocks import RefineBlock, ResidualBlock
from gflow.nets.torch_conv import TorchConv2D

__all__ = ["NCSNv2RefineNet"]


@keras.saving.register_keras_serializable(package="gflow")
class NCSNv2RefineNet(keras.layers.Layer):
  """x ∈ [0, 1]^(H×W×C) ↦ an unconditional score-shaped output (before division by σ).

      2x − 1 → 3x3 conv (ngf) → res1 [ngf, ngf] → res2 [2ngf ↓, 2ngf]
             → res3 [2ngf, dilation 2] → res4 [2ngf, dilation 4]
             → RefineBlocks from res4 up to res1 → InstanceNorm++ → ELU → 3x3 conv (C)

  res2 halves the resolution; res3 and res4 are "down" blocks whose dilated
  convolutions keep it (the official code's NCSNv2 for 32x32 and 64x64). With
  ngf 128 at 32x32x3 it has 29,694,083 parameters. `num_levels` > 0 makes every
  InstanceNorm++ conditional on the noise level (NCSN's noise conditioning, the
  ablation of technique 3); `call(x, levels)` then needs the levels.
  """

  def __init__(self, channels, ngf=128, num_levels=0, **kwargs):
    super().__init__(**kwargs)
    if ngf < 2 or channels < 1:
      raise ValueError(f"NCSNv2RefineNet needs ngf >= 2 and channels >= 1; got {ngf}, "
                       f"{channels}.")
    self.channels, self.ngf, self.num_levels = channels, ngf, num_levels
    p, f = self.dtype_policy, ngf
    res = lambda filters, **kw: ResidualBlock(filters, num_levels=num_levels, dtype=p, **kw)
    self.begin = TorchConv2D(f, 3, dtype=p)
    self.res1 = [res(f), res(f)]
    self.res2 = [res(2 * f, resample="down"), res(2 * f)]
    self.res3 = [res(2 * f, resample="down", dilation=2), res(2 * f, dilation=2)]
    self.res4 = [res(2 * f, resample="down", dilation=4), res(2 * f, dilation=4)]
    self.refine1 = RefineBlock(2 * f, dtype=p)
    self.refine2 = RefineBlock(2 * f, dtype=p)
    self.refine3 = RefineBlock(f, dtype=p)
    self.refine4 = RefineBlock(f, end=True, dtype=p)
    self.norm = InstanceNormPlus(num_levels, dtype=p)
    self.end = TorchConv2D(channels, 3, dtype=p)

  def build(self, input_shape):
    n, h, w, c = input_shape
    if h is None or w is None or h % 2 or w % 2:
      raise ValueError(f"NCSNv2RefineNet needs an even, known height and width; got "
                       f"{input_shape}.")
    f = self.ngf
    full, half = (n, h, w, f), (n, h // 2, w // 2, 2 * f)
    self.begin.build(input_shape)
    for block in self.res1:
      block.build(full)
    self.res2[0].build(full)
    for block in self.res2[1:] + self.res3 + self.res4:
      block.build(half)
    self.refine1.build([half])
    self.refine2.build([half, half])
    self.refine3.build([half, half])
    self.refine4.build([full, full[:-1] + (f,)])
    self.norm.build(full)
    self.end.build(full)

  def call(self, x, levels=None):
    h = self.begin(2 * x - 1)
    skips = []
    for stage in (self.res1, self.res2, self.res3, self.res4):
      for block in stage:
        h = block(h, levels)
      skips.append(h)
    l1, l2, l3, l4 = skips
    r = self.refine1([l4])
    r = self.refine2([l3, r])
    r = self.refine3([l2, r])
    r = self.refine4([l1, r])
    return self.end(keras.ops.elu(self.norm(r, levels)))

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.channels,)

  def get_config(self):
    return {**super().get_config(), "channels": self.channels, "ngf": self.ngf,
            "num_levels": self.num_levels}
