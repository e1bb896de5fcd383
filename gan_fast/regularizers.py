"""Gradient penalties and path length regularisation (filled by the regularizers issue)."""
