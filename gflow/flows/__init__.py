"""Flow models as TFP distributions."""

from gflow.flows.augmented_flow import AugmentedFlow
from gflow.flows.flow import Flow

__all__ = ["AugmentedFlow", "Flow"]
