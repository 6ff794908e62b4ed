"""The Glow plugin: registered through the `gflow.plugins` entry point `glow`."""

from gflow.plugin import Plugin
from gflow_glow.model import build_glow, build_model, glow_step

__all__ = ["PLUGIN", "build_glow", "build_model", "glow_step"]


PLUGIN = Plugin(
    name="glow",
    build_model=build_model,
    description="Glow: multi-scale flow of ActNorm, LU 1x1 conv and affine coupling",
)
