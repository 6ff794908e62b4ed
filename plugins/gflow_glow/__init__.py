"""The Glow plugin: registered through the `gflow.plugins` entry point `glow`."""

from gflow.plugin import Plugin
from gflow_glow.model import build_glow, build_model, glow_step

__all__ = ["PLUGIN", "build_glow", "build_model", "glow_step"]


def _default_config(arg="digits"):
  from gflow.configs_loader import load_config_file
  return load_config_file("glow", arg)


PLUGIN = Plugin(
    name="glow",
    build_model=build_model,
    default_config=_default_config,
    description="Glow: multi-scale flow of ActNorm, LU 1x1 conv and affine coupling",
)
