"""Evaluation: test metrics, held-out likelihood, baselines, latent pictures and plots."""

from tfvae.evaluation.metrics import evaluate_model
from tfvae.evaluation.metrics import format_metrics
from tfvae.evaluation.metrics import importance_sampled_nll

__all__ = ["evaluate_model", "format_metrics", "importance_sampled_nll"]
