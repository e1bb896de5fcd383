// upfirdn2d on CUDA: one thread per output element, a direct gather over the
// taps that land on real input samples (see upfirdn2d.h). Output elements are
// enumerated in the output's memory order (channels innermost for
// channels_last) so that neighbouring threads write neighbouring addresses.
// Any input strides; fp32/fp64/fp16/bf16 (accumulated in float or double). A
// separable filter may run as two 1-D passes (see plan_upfirdn2d).
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

template <typename in_t, typename out_t, bool CHANNELS_LAST>
__global__ void __launch_bounds__(kThreads)
    upfirdn2d_kernel(const in_t* __restrict__ x, const at::opmath_type<in_t>* __restrict__ fc,
                     out_t* __restrict__ y, UpFirDnParams p, Strides4 sx, Strides4 sy, int64_t total) {
  using acc_t = at::opmath_type<in_t>;
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
    const in_t* src = x + n * sx.n + c * sx.c;
    acc_t sum = 0;
    for (int64_t iy = iy_lo, i = iy_lo * p.upy - sy0; iy <= iy_hi; ++iy, i += p.upy) {
      const in_t* srow = src + iy * sx.h;
      const acc_t* frow = fc + i * p.fw;
      for (int64_t ix = ix_lo, j = ix_lo * p.upx - sx0; ix <= ix_hi; ++ix, j += p.upx) {
        sum += frow[j] * static_cast<acc_t>(srow[ix * sx.w]);
      }
    }
    y[n * sy.n + c * sy.c + oy * sy.h + ox * sy.w] = static_cast<out_t>(sum);
  }
}

template <typename in_t, typename out_t>
void launch_pass(const at::Tensor& x, const at::Tensor& fc, const at::Tensor& y, const UpFirDnParams& p,
                 cudaStream_t stream) {
  using acc_t = at::opmath_type<in_t>;
  const int64_t total = y.numel();
  const Strides4 sx{x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  const Strides4 sy{y.stride(0), y.stride(1), y.stride(2), y.stride(3)};
  const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t(1) << 20);
  const in_t* xp = x.const_data_ptr<in_t>();
  const acc_t* fp = fc.const_data_ptr<acc_t>();
  out_t* yp = y.mutable_data_ptr<out_t>();
  if (sy.c == 1 && p.C > 1) {
    upfirdn2d_kernel<in_t, out_t, true><<<blocks, kThreads, 0, stream>>>(xp, fp, yp, p, sx, sy, total);
  } else {
    upfirdn2d_kernel<in_t, out_t, false><<<blocks, kThreads, 0, stream>>>(xp, fp, yp, p, sx, sy, total);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

at::Tensor upfirdn2d_fwd_cuda(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                              int64_t downy, int64_t px0, int64_t px1, int64_t py0, int64_t py1, bool flip_filter,
                              double gain) {
  TORCH_CHECK(x.is_cuda(), "gan_fast::upfirdn2d (CUDA kernel): x must be a CUDA tensor, got ", x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out;
  const std::vector<UpFirDnPass> passes =
      plan_upfirdn2d(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain, out);
  if (out.numel() == 0) return out;
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gan_fast::upfirdn2d_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (passes.size() == 1) {
      launch_pass<scalar_t, scalar_t>(x, passes[0].fc, out, passes[0].p, stream);
    } else {
      const at::Tensor tmp = intermediate(out, passes[0].p, passes[0].fc.scalar_type());
      launch_pass<scalar_t, acc_t>(x, passes[0].fc, tmp, passes[0].p, stream);
      launch_pass<acc_t, scalar_t>(tmp, passes[1].fc, out, passes[1].p, stream);
    }
  });
  return out;
}

}  // namespace gan_fast
