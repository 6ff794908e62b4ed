"""The NCSNv2 plugin: registered through the `gflow.plugins` entry point `ncsnv2`."""

from gflow.plugin import Plugin
from gflow_ncsnv2.model import build_model

__all__ = ["PLUGIN", "build_model"]


PLUGIN = Plugin(
    name="ncsnv2",
    build_model=build_model,
    description="NCSNv2: noise-conditional score network (RefineNet, ELU, InstanceNorm++), "
                "denoising score matching, annealed Langevin sampling",
)
