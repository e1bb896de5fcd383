"""Autograd glue and torch.library registration for the fast (Triton / C++) backends."""
