"""The WaveFlow plugin: registered through the `gflow.plugins` entry point `waveflow`."""

from gflow.plugin import Plugin
from gflow_waveflow.model import WaveFlow, build_model, build_waveflow_stack

__all__ = ["PLUGIN", "WaveFlow", "build_model", "build_waveflow_stack"]


PLUGIN = Plugin(
    name="waveflow",
    build_model=build_model,
    description="WaveFlow: mel-conditioned raw-audio flow, autoregressive along the height "
                "of the folded waveform",
)
