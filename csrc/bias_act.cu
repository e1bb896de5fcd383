// bias_act on CUDA: one fused elementwise pass per kernel (forward, gradient,
// second order), fp32/fp64/fp16/bf16 (half types computed in float), any dense
// memory format: the operands share x's strides, the channel of memory offset
// i is (i / stride_c) % C with stride_c = x.stride(dim) (see bias_act.h).
// 32-bit indexing when the tensor allows.
//
// The *_db kernels also reduce their output per channel (the bias gradient) in
// the same pass, deterministically: memory is [O, C, S] (S = stride_c);
//   runs (S >= kRunsMinS): a block per (o-block, channel) sums OB runs of S
//     elements of its channel into partial[ob * C + c];
//   columns (S < kRunsMinS): memory as rows of W = m * C * S elements (m rows of
//     [C, S] side by side, so that a row fills a block), a thread per column q
//     (channel (q / S) % C) sums kColRows rows into partial[rb * W + q];
// then a block per channel adds its partials in a fixed order (each thread a
// fixed strided subset, a fixed-shape tree across the block). No atomics.
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

constexpr int64_t kRunsMinS = 64;
constexpr int64_t kRunElems = 4096;  // elements per block in runs mode, at least
constexpr int64_t kColRows = 64;     // rows per block in columns mode

// The sum of v over the block, valid in thread 0; a fixed order (no atomics), so deterministic.
template <typename acc_t>
__device__ inline acc_t block_sum(acc_t v) {
  __shared__ acc_t warp_sums[kThreads / 32];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = v;
  __syncthreads();
  acc_t total = 0;
  if (threadIdx.x == 0) {
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
  }
  return total;
}

template <typename scalar_t, int A, int M>
__global__ void __launch_bounds__(kThreads)
    bias_act_runs_db_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ b,
                            const scalar_t* __restrict__ g, const scalar_t* __restrict__ gg,
                            scalar_t* __restrict__ out, at::opmath_type<scalar_t>* __restrict__ partial, int64_t O,
                            int64_t C, int64_t S, int64_t OB, at::opmath_type<scalar_t> alpha,
                            at::opmath_type<scalar_t> gain, at::opmath_type<scalar_t> clamp) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t blk = blockIdx.x;  // ob * C + c
  const int64_t c = blk % C, ob = blk / C;
  const acc_t bc = static_cast<acc_t>(b[c]);
  const int64_t o_end = min(O, (ob + 1) * OB);
  acc_t sum = 0;
  for (int64_t o = ob * OB; o < o_end; ++o) {
    const int64_t base = (o * C + c) * S;
    for (int64_t s = threadIdx.x; s < S; s += kThreads) {
      const int64_t i = base + s;
      const acc_t v = static_cast<acc_t>(x[i]) + bc;
      const acc_t ggi = M == kGrad2 ? static_cast<acc_t>(gg[i]) : acc_t(0);
      const scalar_t r = static_cast<scalar_t>(
          bias_act_element<A, M, kClampRuntime, acc_t>(v, static_cast<acc_t>(g[i]), ggi, alpha, gain, clamp));
      out[i] = r;
      sum += static_cast<acc_t>(r);
    }
  }
  const acc_t total = block_sum(sum);
  if (threadIdx.x == 0) partial[blk] = total;
}

template <typename scalar_t, int A, int M>
__global__ void __launch_bounds__(kThreads)
    bias_act_cols_db_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ b,
                            const scalar_t* __restrict__ g, const scalar_t* __restrict__ gg,
                            scalar_t* __restrict__ out, at::opmath_type<scalar_t>* __restrict__ partial,
                            int64_t numel, int64_t C, int64_t S, int64_t W, int64_t nQB,
                            at::opmath_type<scalar_t> alpha, at::opmath_type<scalar_t> gain,
                            at::opmath_type<scalar_t> clamp) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t blk = blockIdx.x;  // rb * nQB + qb
  const int64_t rb = blk / nQB;
  const int64_t q = (blk % nQB) * kThreads + threadIdx.x;
  if (q >= W) return;
  const acc_t bc = static_cast<acc_t>(b[(q / S) % C]);
  acc_t sum = 0;
  for (int64_t r = rb * kColRows; r < (rb + 1) * kColRows; ++r) {
    const int64_t i = r * W + q;
    if (i >= numel) break;
    const acc_t v = static_cast<acc_t>(x[i]) + bc;
    const acc_t ggi = M == kGrad2 ? static_cast<acc_t>(gg[i]) : acc_t(0);
    const scalar_t o = static_cast<scalar_t>(
        bias_act_element<A, M, kClampRuntime, acc_t>(v, static_cast<acc_t>(g[i]), ggi, alpha, gain, clamp));
    out[i] = o;
    sum += static_cast<acc_t>(o);
  }
  partial[rb * W + q] = sum;
}

// db[c] = the sum of partial[r, q] over rows r < R and the columns q < W of channel c ((q / S) % C == c).
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    bias_act_db_final_kernel(const at::opmath_type<scalar_t>* __restrict__ partial, scalar_t* __restrict__ db,
                             int64_t R, int64_t W, int64_t C, int64_t S) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t c = blockIdx.x;
  const int64_t per_row = W / C;  // m * S columns of channel c per row
  acc_t sum = 0;
  for (int64_t k = threadIdx.x; k < R * per_row; k += kThreads) {
    const int64_t r = k / per_row, j = (k % per_row) / S, s = k % S;
    sum += partial[r * W + (j * C + c) * S + s];
  }
  const acc_t total = block_sum(sum);
  if (threadIdx.x == 0) db[c] = static_cast<scalar_t>(total);
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

  // As launch, and db[c] = the sum of `out` over channel c (db: C entries, x's dtype; b has C entries).
  template <int M>
  static void launch_db(const at::Tensor& x, const at::Tensor& b, const at::Tensor& g, const at::Tensor& gg,
                        at::Tensor& out, at::Tensor& db, int64_t act, double alpha, double gain, double clamp,
                        int64_t C, int64_t stride_c) {
    TORCH_CHECK(x.is_cuda(), "gan_fast::bias_act (CUDA kernel): x must be a CUDA tensor, got ", x.device());
    TORCH_CHECK(act >= 0 && act < kNumActs, "gan_fast::bias_act: unknown activation code ", act);
    const int64_t numel = x.numel();
    const c10::cuda::CUDAGuard guard(x.device());
    if (numel == 0) {
      db.zero_();
      return;
    }
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const int64_t S = C == 1 ? 1 : stride_c;
    const int64_t O = numel / (C * S);
    const bool runs = S >= kRunsMinS;
    // Partials as rows of W columns: runs [nOB, C]; columns [nRB, W] with W = m * C * S.
    const int64_t OB = std::max<int64_t>(1, kRunElems / S);
    const int64_t nOB = (O + OB - 1) / OB;
    const int64_t W = runs ? C : std::max<int64_t>(1, kThreads / (C * S)) * C * S;
    const int64_t nQB = (W + kThreads - 1) / kThreads;
    const int64_t nRB = ((numel + W - 1) / W + kColRows - 1) / kColRows;
    const int64_t R = runs ? nOB : nRB;
    const auto acc_type = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    at::Tensor partial = at::empty({R * W}, x.options().dtype(acc_type));
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gan_fast::bias_act_db_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const scalar_t* xp = x.const_data_ptr<scalar_t>();
      const scalar_t* bp = b.const_data_ptr<scalar_t>();
      const scalar_t* gp = g.const_data_ptr<scalar_t>();
      const scalar_t* ggp = gg.defined() ? gg.const_data_ptr<scalar_t>() : nullptr;
      scalar_t* op = out.mutable_data_ptr<scalar_t>();
      acc_t* pp = partial.mutable_data_ptr<acc_t>();
      const acc_t a = static_cast<acc_t>(alpha), k = static_cast<acc_t>(gain), c = static_cast<acc_t>(clamp);
      GAN_FAST_DISPATCH_ACT(act, [&] {
        if (runs) {
          bias_act_runs_db_kernel<scalar_t, kAct, M><<<nOB * C, kThreads, 0, stream>>>(xp, bp, gp, ggp, op, pp, O, C,
                                                                                      S, OB, a, k, c);
        } else {
          bias_act_cols_db_kernel<scalar_t, kAct, M><<<nRB * nQB, kThreads, 0, stream>>>(xp, bp, gp, ggp, op, pp,
                                                                                        numel, C, S, W, nQB, a, k, c);
        }
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
      bias_act_db_final_kernel<scalar_t><<<C, kThreads, 0, stream>>>(pp, db.mutable_data_ptr<scalar_t>(), R, W,
                                                                     C, runs ? 1 : S);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
};

}  // namespace

at::Tensor bias_act_fwd_cuda(const at::Tensor& x, const at::Tensor& b, int64_t act, double alpha, double gain,
                            std::optional<double> clamp, int64_t C, int64_t inner) {
  return bias_act_fwd_with<Launcher>(x, b, act, alpha, gain, clamp, C, inner);
}

at::Tensor bias_act_grad_cuda(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& b, int64_t act,
                             double alpha, double gain, std::optional<double> clamp, int64_t C, int64_t inner) {
  return bias_act_grad_with<Launcher>(dy, x, b, act, alpha, gain, clamp, C, inner);
}

at::Tensor bias_act_grad2_cuda(const at::Tensor& ddx, const at::Tensor& dy, const at::Tensor& x,
                              const at::Tensor& b, int64_t act, double alpha, double gain, std::optional<double> clamp, int64_t C,
                              int64_t inner) {
  return bias_act_grad2_with<Launcher>(ddx, dy, x, b, act, alpha, gain, clamp, C, inner);
}

std::tuple<at::Tensor, at::Tensor> bias_act_grad_db_cuda(const at::Tensor& dy, const at::Tensor& x,
                                                         const at::Tensor& b, int64_t act, double alpha, double gain,
                                                         std::optional<double> clamp, int64_t C, int64_t inner) {
  return bias_act_grad_db_with<Launcher>(dy, x, b, act, alpha, gain, clamp, C, inner);
}

std::tuple<at::Tensor, at::Tensor> bias_act_grad2_db_cuda(const at::Tensor& ddx, const at::Tensor& dy,
                                                          const at::Tensor& x, const at::Tensor& b, int64_t act,
                                                          double alpha, double gain, std::optional<double> clamp, int64_t C,
                                                          int64_t inner) {
  return bias_act_grad2_db_with<Launcher>(ddx, dy, x, b, act, alpha, gain, clamp, C, inner);
}

}  // namespace gan_fast
