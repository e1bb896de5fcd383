"""Runnable examples: ``python -m gan_fast.examples.toy_2d --help``."""
