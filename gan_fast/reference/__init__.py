"""Pure-PyTorch reference implementations: the specification of every op and the CPU fallback.

One module per op (``bias_act``, ``upfirdn2d``, ``conv2d_resample``,
``modulated_conv2d``, ``power_iteration``, ``gradient_norm_penalty``). These
functions take already-validated, already-defaulted arguments; call the public
ops in :mod:`gan_fast.ops` instead.
"""
