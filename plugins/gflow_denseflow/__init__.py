"""The DenseFlow plugin: registered through the `gflow.plugins` entry point `denseflow`."""

from gflow.plugin import Plugin
from gflow_denseflow.model import build_denseflow, build_model, glow_like_module

__all__ = ["PLUGIN", "build_denseflow", "build_model", "glow_like_module"]


PLUGIN = Plugin(
    name="denseflow",
    build_model=build_model,
    description="DenseFlow: cross-unit coupling (incremental augmentation), dense + "
                "Nyström intra-unit coupling, variational dequantization",
)
