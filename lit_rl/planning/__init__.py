"""Planners over models: ARC/CEM (MPPI-style) sequence planners, known models, lookahead PI."""
