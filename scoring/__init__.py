"""Fit and engagement scoring: the versioned model, decay, gates, explanations."""
