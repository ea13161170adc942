"""Scoring pipeline parts against the simulator's ground truth (synthetic data)."""
