"""NCSNv2 (Song & Ermon 2020): a RefineNet score model over geometric noise levels."""

from gflow.nets.refinenet import NCSNv2RefineNet
from gflow.score.model import ScoreModel
from gflow.score.noise_levels import check_step_size, geometric_sigmas

__all__ = ["build_model"]


def build_model(model_config, event_shape):
  """NCSNv2 as a `gflow.score.ScoreModel` over images of `event_shape` (H, W, C).

  σ₁ … σ_L are geometric from `model.sigma_1` to `model.sigma_l` in
  `model.num_scales` levels (techniques 1 and 2; `gflow-noise-schedule` prints the
  recommended values for a dataset); the sampler takes ε and T from
  `model.sampling` (technique 4).
  """
  c = model_config
  s = c.sampling
  check_step_size(float(s.eps), float(c.sigma_l))
  sigmas = geometric_sigmas(c.sigma_1, c.sigma_l, c.num_scales)
  conditional = c.conditioning == "conditional"
  dtype = c.get("network_dtype") or None
  net = NCSNv2RefineNet(event_shape[-1], ngf=c.ngf, num_levels=len(sigmas) if conditional else 0,
                        dtype=dtype, name="refinenet")
  return ScoreModel(net, event_shape, sigmas,
                    sampling=dict(eps=float(s.eps), steps=int(s.steps), denoise=bool(s.denoise),
                                  jit_compile=bool(s.jit_compile)),
                    num_levels=c.num_levels, conditioning=c.conditioning,
                    dequantize=c.dequantize, eval_levels=c.eval_levels, name="NCSNv2")
