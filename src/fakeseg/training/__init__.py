"""Training: composite sampling, losses and the trainer."""
