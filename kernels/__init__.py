"""Triton kernels and their launchers (installed as ``gan_fast.kernels``).

One module per op. No autograd here, and nothing here imports the public API.
"""
