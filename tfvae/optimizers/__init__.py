"""Optimizers: `FusedAdam`, Keras's Adam with each variable's update in one kernel."""

from tfvae.optimizers.fused_adam import FusedAdam

__all__ = ["FusedAdam"]
