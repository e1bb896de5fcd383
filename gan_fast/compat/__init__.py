"""Drop-in call sites: swap the import, keep the calls.

StyleGAN2-ADA / StyleGAN3 (``torch_utils.ops``)::

    from torch_utils.ops import bias_act, conv2d_gradfix, conv2d_resample, filtered_lrelu, fma, grid_sample_gradfix, upfirdn2d
    # becomes
    from gan_fast.compat import bias_act, conv2d_gradfix, conv2d_resample, filtered_lrelu, fma, grid_sample_gradfix, upfirdn2d

``bias_act.bias_act(x, b, act='lrelu')``, ``bias_act.activation_funcs[act].def_gain``,
``upfirdn2d.setup_filter(...)``, ``with conv2d_gradfix.no_weight_gradients(): ...``,
``conv2d_gradfix.weight_gradients_disabled``, ``grid_sample_gradfix.grid_sample(x, grid)``,
``fma.fma(a, b, c)`` and the rest keep working and run gan_fast's ops.

``impl='cuda'`` (the originals' default) means the automatic choice here, i.e. ``impl=None``:
the fastest backend usable for the tensors' device (Triton or the C++/CUDA extension for CUDA
tensors, the C++ extension or the reference for CPU tensors), falling back to the reference with
one warning and never an exception, as the originals run their reference for CPU tensors;
``gan_fast.config.use_backend`` / ``GAN_FAST_IMPL`` still force a backend. ``'ref'``, ``'triton'`` and ``'cpp'`` stay explicit,
strict requests. (The core API, :mod:`gan_fast.ops`, keeps ``'cuda'`` as a strict alias of ``'cpp'``.)

rosinality's ``op`` package (stylegan2-pytorch, and basicsr, GFPGAN, e4e, pSp ... that vendor it)
is mirrored by :mod:`gan_fast.compat.rosinality`.
"""

from . import bias_act, conv2d_gradfix, conv2d_resample, filtered_lrelu, fma, grid_sample_gradfix, upfirdn2d

__all__ = ["bias_act", "conv2d_gradfix", "conv2d_resample", "filtered_lrelu", "fma", "grid_sample_gradfix", "upfirdn2d"]
