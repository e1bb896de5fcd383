// upfirdn2d on CUDA: one thread per output element, a direct gather over the
// taps that land on real input samples (see upfirdn2d.h). Output elements are
// enumerated in the output's memory order (channels innermost for
// channels_last) so that neighbouring threads write neighbouring addresses.
// Any input strides; fp32/fp64/fp16/bf16 (accumulated in float or double).
#include "upfirdn2d.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

namespace gan_fast {
namespace {

constexpr int kThreads = 256;

struct Strides4 {
  int64_t n, c, h, w;
};

template <typename scalar_t, bool CHANNELS_LAST>
__global__ void __launch_bounds__(kThreads)
    upfirdn2d_kernel(const scalar_t* __restrict__ x, const at::opmath_type<scalar_t>* __restrict__ fc,
                     scalar_t* __restrict__ y, UpFirDnParams p, Strides4 sx, Strides4 sy, int64_t total) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += step) {
    int64_t n, c, oy, ox;
    if (CHANNELS_LAST) {
      c = idx % p.C;
      ox = (idx / p.C) % p.OW;
      oy = (idx / (p.C * p.OW)) % p.OH;
      n = idx / (p.C * p.OW * p.OH);
    } else {
      ox = idx % p.OW;
      oy = (idx / p.OW) % p.OH;
      c = (idx / (p.OW * p.OH)) % p.C;
      n = idx / (p.OW * p.OH * p.C);
    }
    const int64_t sy0 = oy * p.downy - p.py0;
    const int64_t sx0 = ox * p.downx - p.px0;
    const int64_t iy_lo = max(ceil_div(sy0, p.upy), int64_t(0));
    const int64_t iy_hi = min(floor_div(sy0 + p.fh - 1, p.upy), p.H - 1);
    const int64_t ix_lo = max(ceil_div(sx0, p.upx), int64_t(0));
    const int64_t ix_hi = min(floor_div(sx0 + p.fw - 1, p.upx), p.W - 1);
    const scalar_t* src = x + n * sx.n + c * sx.c;
    acc_t sum = 0;
    for (int64_t iy = iy_lo, i = iy_lo * p.upy - sy0; iy <= iy_hi; ++iy, i += p.upy) {
      const scalar_t* srow = src + iy * sx.h;
      const acc_t* frow = fc + i * p.fw;
      for (int64_t ix = ix_lo, j = ix_lo * p.upx - sx0; ix <= ix_hi; ++ix, j += p.upx) {
        sum += frow[j] * static_cast<acc_t>(srow[ix * sx.w]);
      }
    }
    y[n * sy.n + c * sy.c + oy * sy.h + ox * sy.w] = static_cast<scalar_t>(sum);
  }
}

}  // namespace

at::Tensor upfirdn2d_fwd_cuda(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                              int64_t downy, int64_t px0, int64_t px1, int64_t py0, int64_t py1, bool flip_filter,
                              double gain) {
  TORCH_CHECK(x.is_cuda(), "gan_fast::upfirdn2d (CUDA kernel): x must be a CUDA tensor, got ", x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out, fc;
  const UpFirDnParams p =
      check_upfirdn2d(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain, out, fc);
  const int64_t total = out.numel();
  if (total == 0) return out;
  const Strides4 sx{x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  const Strides4 sy{out.stride(0), out.stride(1), out.stride(2), out.stride(3)};
  const bool channels_last = sy.c == 1 && p.C > 1;
  const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t(1) << 20);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gan_fast::upfirdn2d_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const acc_t* fp = fc.const_data_ptr<acc_t>();
    scalar_t* yp = out.mutable_data_ptr<scalar_t>();
    if (channels_last) {
      upfirdn2d_kernel<scalar_t, true><<<blocks, kThreads, 0, stream>>>(xp, fp, yp, p, sx, sy, total);
    } else {
      upfirdn2d_kernel<scalar_t, false><<<blocks, kThreads, 0, stream>>>(xp, fp, yp, p, sx, sy, total);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace gan_fast
