"""Training: trainer, learning-rate schedules, checkpoints and resume, distribution."""
