"""Training layer: point-in-time training sets from audit outcomes, LightGBM models, tuning,
MLflow tracking and registry, evaluation against baselines."""
