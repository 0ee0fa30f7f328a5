"""Integrations of Lookalike with shop frameworks, each an optional Django app."""
