"""Flow models as TFP distributions."""

from gflow.flows.augmented_flow import AugmentedFlow
from gflow.flows.flow import Flow
from gflow.flows.noise import Noise

__all__ = ["AugmentedFlow", "Flow", "Noise"]
