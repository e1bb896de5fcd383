// upfirdn2d on CPU: a direct gather that visits only the taps landing on real
// input samples (zeros inserted by upsampling and padding are never touched).
//
// Two loop orders: NCHW-like inputs go row by row over (n, c, oy); channels_last
// inputs go pixel by pixel over (n, oy, ox) with the channel loop innermost
// (unit stride, vectorised). Any input strides are accepted. A separable filter
// may run as two 1-D passes through a float intermediate (see plan_upfirdn2d).
#include "upfirdn2d.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace gan_fast {
namespace {

struct TapRange {  // input index range [lo, hi] and the filter tap of lo
  int64_t lo, hi, tap;
};

std::vector<TapRange> tap_ranges(int64_t out_size, int64_t in_size, int64_t up, int64_t down, int64_t pad0,
                                 int64_t taps) {
  std::vector<TapRange> r(out_size);
  for (int64_t o = 0; o < out_size; ++o) {
    const int64_t start = o * down - pad0;  // upsampled coordinate of tap 0
    const int64_t lo = std::max<int64_t>(ceil_div(start, up), 0);
    const int64_t hi = std::min<int64_t>(floor_div(start + taps - 1, up), in_size - 1);
    r[o] = {lo, hi, lo * up - start};
  }
  return r;
}

template <typename in_t, typename out_t>
void upfirdn2d_kernel(const at::Tensor& x, const at::Tensor& fc, const at::Tensor& out, const UpFirDnParams& p) {
  using acc_t = at::opmath_type<in_t>;
  const in_t* xp = x.const_data_ptr<in_t>();
  const acc_t* fp = fc.const_data_ptr<acc_t>();
  out_t* yp = out.mutable_data_ptr<out_t>();
  const int64_t sxn = x.stride(0), sxc = x.stride(1), sxh = x.stride(2), sxw = x.stride(3);
  const int64_t syn = out.stride(0), syc = out.stride(1), syh = out.stride(2), syw = out.stride(3);
  const std::vector<TapRange> rows = tap_ranges(p.OH, p.H, p.upy, p.downy, p.py0, p.fh);
  const std::vector<TapRange> cols = tap_ranges(p.OW, p.W, p.upx, p.downx, p.px0, p.fw);
  const int64_t fw = p.fw, upx = p.upx, upy = p.upy;

  if (sxc == 1 && syc == 1 && p.C > 1) {
    // channels_last: one output pixel at a time, all channels at once.
    const int64_t C = p.C;
    const int64_t grain = std::max<int64_t>(1, 4096 / C);
    at::parallel_for(0, p.N * p.OH * p.OW, grain, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> acc(C);
      for (int64_t idx = begin; idx < end; ++idx) {
        const int64_t ox = idx % p.OW;
        const int64_t oy = (idx / p.OW) % p.OH;
        const int64_t n = idx / (p.OW * p.OH);
        std::fill(acc.begin(), acc.end(), acc_t(0));
        const TapRange ry = rows[oy], rx = cols[ox];
        for (int64_t iy = ry.lo, i = ry.tap; iy <= ry.hi; ++iy, i += upy) {
          for (int64_t ix = rx.lo, j = rx.tap; ix <= rx.hi; ++ix, j += upx) {
            const acc_t w = fp[i * fw + j];
            const in_t* src = xp + n * sxn + iy * sxh + ix * sxw;
            acc_t* a = acc.data();
            for (int64_t c = 0; c < C; ++c) a[c] += w * static_cast<acc_t>(src[c]);
          }
        }
        out_t* dst = yp + n * syn + oy * syh + ox * syw;
        for (int64_t c = 0; c < C; ++c) dst[c] = static_cast<out_t>(acc[c]);
      }
    });
    return;
  }

  // General strides: one output row (n, c, oy) at a time.
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(p.OW, 1));
  at::parallel_for(0, p.N * p.C * p.OH, grain, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t oy = idx % p.OH;
      const int64_t c = (idx / p.OH) % p.C;
      const int64_t n = idx / (p.OH * p.C);
      const in_t* src = xp + n * sxn + c * sxc;
      out_t* dst = yp + n * syn + c * syc + oy * syh;
      const TapRange ry = rows[oy];
      for (int64_t ox = 0; ox < p.OW; ++ox) {
        const TapRange rx = cols[ox];
        acc_t sum = 0;
        for (int64_t iy = ry.lo, i = ry.tap; iy <= ry.hi; ++iy, i += upy) {
          const in_t* srow = src + iy * sxh;
          const acc_t* frow = fp + i * fw;
          for (int64_t ix = rx.lo, j = rx.tap; ix <= rx.hi; ++ix, j += upx) {
            sum += frow[j] * static_cast<acc_t>(srow[ix * sxw]);
          }
        }
        dst[ox * syw] = static_cast<out_t>(sum);
      }
    }
  });
}

}  // namespace

at::Tensor upfirdn2d_fwd_cpu(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                             int64_t downy, int64_t px0, int64_t px1, int64_t py0, int64_t py1, bool flip_filter,
                             double gain) {
  TORCH_CHECK(x.device().is_cpu(), "gan_fast::upfirdn2d (CPU kernel): x must be a CPU tensor, got ", x.device());
  at::Tensor out;
  const std::vector<UpFirDnPass> passes =
      plan_upfirdn2d(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain, out);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gan_fast::upfirdn2d_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (passes.size() == 1) {
      upfirdn2d_kernel<scalar_t, scalar_t>(x, passes[0].fc, out, passes[0].p);
    } else {
      const at::Tensor tmp = intermediate(out, passes[0].p, passes[0].fc.scalar_type());
      upfirdn2d_kernel<scalar_t, acc_t>(x, passes[0].fc, tmp, passes[0].p);
      upfirdn2d_kernel<acc_t, scalar_t>(tmp, passes[1].fc, out, passes[1].p);
    }
  });
  return out;
}

}  // namespace gan_fast
