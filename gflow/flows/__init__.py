"""Flow models as TFP distributions."""

from gflow.flows.flow import Flow

__all__ = ["Flow"]
