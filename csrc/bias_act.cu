// bias_act on CUDA: one fused elementwise pass per kernel (forward, gradient,
// second order), fp32/fp64/fp16/bf16 (half types computed in float), any dense
// memory format: the operands share x's strides, the channel of memory offset
// i is (i / stride_c) % C with stride_c = x.stride(dim) (see bias_act.h).
// 32-bit indexing when the tensor allows.
#include "bias_act.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <limits>

namespace gan_fast {
namespace {

constexpr int kThreads = 256;

template <typename scalar_t, typename index_t, int A, int M>
__global__ void __launch_bounds__(kThreads)
    bias_act_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ b, const scalar_t* __restrict__ g,
                    const scalar_t* __restrict__ gg, scalar_t* __restrict__ out, index_t numel, index_t C,
                    index_t stride_c, at::opmath_type<scalar_t> alpha, at::opmath_type<scalar_t> gain,
                    at::opmath_type<scalar_t> clamp) {
  using acc_t = at::opmath_type<scalar_t>;
  const index_t stride = static_cast<index_t>(blockDim.x) * static_cast<index_t>(gridDim.x);
  for (index_t i = static_cast<index_t>(blockIdx.x) * static_cast<index_t>(blockDim.x) + threadIdx.x; i < numel;
       i += stride) {
    acc_t v = static_cast<acc_t>(x[i]);
    if (b != nullptr) v += static_cast<acc_t>(b[(i / stride_c) % C]);
    const acc_t gi = M != kForward ? static_cast<acc_t>(g[i]) : acc_t(0);
    const acc_t ggi = M == kGrad2 ? static_cast<acc_t>(gg[i]) : acc_t(0);
    out[i] = static_cast<scalar_t>(bias_act_element<A, M, kClampRuntime, acc_t>(v, gi, ggi, alpha, gain, clamp));
  }
}

// The device launcher used by the shared entry points in bias_act.h.
struct Launcher {
  template <int M>
  static void launch(const at::Tensor& x, const at::Tensor& b, const at::Tensor& g, const at::Tensor& gg,
                     at::Tensor& out, int64_t act, double alpha, double gain, double clamp, int64_t C, int64_t stride_c) {
    TORCH_CHECK(x.is_cuda(), "gan_fast::bias_act (CUDA kernel): x must be a CUDA tensor, got ", x.device());
    TORCH_CHECK(act >= 0 && act < kNumActs, "gan_fast::bias_act: unknown activation code ", act);
    const int64_t numel = x.numel();
    if (numel == 0) return;
    const c10::cuda::CUDAGuard guard(x.device());
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const int64_t blocks = std::min<int64_t>((numel + kThreads - 1) / kThreads, int64_t(1) << 20);
    const bool small = numel <= std::numeric_limits<int32_t>::max() / 2;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gan_fast::bias_act_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const scalar_t* xp = x.const_data_ptr<scalar_t>();
      const scalar_t* bp = b.numel() > 0 ? b.const_data_ptr<scalar_t>() : nullptr;
      const scalar_t* gp = g.defined() ? g.const_data_ptr<scalar_t>() : nullptr;
      const scalar_t* ggp = gg.defined() ? gg.const_data_ptr<scalar_t>() : nullptr;
      scalar_t* op = out.mutable_data_ptr<scalar_t>();
      const acc_t a = static_cast<acc_t>(alpha), k = static_cast<acc_t>(gain), c = static_cast<acc_t>(clamp);
      GAN_FAST_DISPATCH_ACT(act, [&] {
        if (small) {
          bias_act_kernel<scalar_t, int32_t, kAct, M><<<blocks, kThreads, 0, stream>>>(
              xp, bp, gp, ggp, op, static_cast<int32_t>(numel), static_cast<int32_t>(C), static_cast<int32_t>(stride_c),
              a, k, c);
        } else {
          bias_act_kernel<scalar_t, int64_t, kAct, M><<<blocks, kThreads, 0, stream>>>(xp, bp, gp, ggp, op, numel, C,
                                                                                      stride_c, a, k, c);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
};

}  // namespace

at::Tensor bias_act_fwd_cuda(const at::Tensor& x, const at::Tensor& b, int64_t act, double alpha, double gain,
                            double clamp, int64_t C, int64_t inner) {
  return bias_act_fwd_with<Launcher>(x, b, act, alpha, gain, clamp, C, inner);
}

at::Tensor bias_act_grad_cuda(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& b, int64_t act,
                             double alpha, double gain, double clamp, int64_t C, int64_t inner) {
  return bias_act_grad_with<Launcher>(dy, x, b, act, alpha, gain, clamp, C, inner);
}

at::Tensor bias_act_grad2_cuda(const at::Tensor& ddx, const at::Tensor& dy, const at::Tensor& x,
                              const at::Tensor& b, int64_t act, double alpha, double gain, double clamp, int64_t C,
                              int64_t inner) {
  return bias_act_grad2_with<Launcher>(ddx, dy, x, b, act, alpha, gain, clamp, C, inner);
}

}  // namespace gan_fast
