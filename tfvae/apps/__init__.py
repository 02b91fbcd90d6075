"""Applications built on trained models: anomaly detection, pretraining, the PCA comparison."""
