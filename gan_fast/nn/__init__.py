"""Modules built on :mod:`gan_fast.ops`."""
