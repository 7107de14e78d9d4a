"""Placement: the CP-SAT model, its baselines, verifier, explanations and trace replay."""
