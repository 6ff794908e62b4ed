"""gflow's bijectors: `tfp.bijectors.Bijector` subclasses, NHWC, forward = data → latent."""

from gflow.bijectors.actnorm import ActNorm, actnorm_init_from_data
from gflow.bijectors.channel_swap import ChannelSwap
from gflow.bijectors.conv1x1 import Conv1x1, Conv1x1LU
from gflow.bijectors.coupling import AdditiveCoupling, AffineCoupling, SCALE_FNS
from gflow.bijectors.cross_unit_coupling import CrossUnitCoupling
from gflow.bijectors.dequantization import UniformDequantization
from gflow.bijectors.expect_shape import ExpectShape
from gflow.bijectors.factor_out import FactorOut
from gflow.bijectors.fold import Fold
from gflow.bijectors.permute_rows import PermuteRows
from gflow.bijectors.row_autoregressive import RowAutoregressiveAffine
from gflow.bijectors.squeeze import Squeeze

__all__ = [
    "ActNorm", "actnorm_init_from_data", "AdditiveCoupling", "AffineCoupling",
    "ChannelSwap", "Conv1x1", "Conv1x1LU", "CrossUnitCoupling", "ExpectShape", "FactorOut", "Fold", "PermuteRows",
    "RowAutoregressiveAffine", "SCALE_FNS", "Squeeze",
    "UniformDequantization",
]

