"""``torch_utils.ops.upfirdn2d`` call sites: setup_filter, upfirdn2d, filter2d, upsample2d, downsample2d."""

from ..ops import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

__all__ = ["setup_filter", "upfirdn2d", "filter2d", "upsample2d", "downsample2d"]
