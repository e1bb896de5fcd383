// bias_act on CPU: one fused pass per kernel (forward, gradient, second order).
//
// The operands share x's strides (like_x makes them), so each kernel walks
// memory linearly. The walk is split into runs of constant bias (channel-major
// layouts: stride_c > 1) or runs where the bias advances with the element
// (channels-last: stride_c == 1), so the innermost loops have no divisions and
// the compiler vectorises them. at::parallel_for splits the work over threads.
//
// The gradient kernels can also reduce their output per channel (db = dx summed
// over every dim but the bias dim) in the same pass: memory is [O, C, S] (S =
// stride_c), cut into units of fixed size (never depending on the thread count),
// each unit sums its part of every channel it covers into its own row of partial
// sums (in acc_t, from the stored, rounded outputs, as dx.sum() would), and the
// rows are added in a fixed order: deterministic, no atomics.
#include "bias_act.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <memory>

namespace gan_fast {
namespace {

constexpr int64_t kGrain = 32768;

// What the innermost loop does besides writing `out`: nothing, return the sum of
// what it wrote (a run of one channel), or add what it wrote to acc[k] (a row
// of channels). The sums run in 16 independent lanes, so the loop vectorises
// without reassociating a float sum; the lanes are added in a fixed order.
enum Reduce : int { kNoReduce = 0, kSumRun = 1, kAddRow = 2 };

// The innermost loop, defined twice on x86-64 with GCC: for the baseline ISA and
// for AVX2 (picked at run time), so one build is portable and still uses the
// wider vectors where the CPU has them.
#define GAN_FAST_DEFINE_RUN_INNER                                                                              \
  template <typename scalar_t, int A, int M, int CM, bool STEP, int R>                                         \
  at::opmath_type<scalar_t> run_inner(const scalar_t* __restrict__ x, const scalar_t* __restrict__ b,          \
                                      const scalar_t* __restrict__ g, const scalar_t* __restrict__ gg,         \
                                      scalar_t* __restrict__ out, int64_t n, at::opmath_type<scalar_t> alpha,  \
                                      at::opmath_type<scalar_t> gain, at::opmath_type<scalar_t> clamp,         \
                                      at::opmath_type<scalar_t>* __restrict__ acc) {                           \
    using acc_t = at::opmath_type<scalar_t>;                                                                   \
    const acc_t b0 = b != nullptr ? static_cast<acc_t>(b[0]) : acc_t(0);                                       \
    auto element = [&](int64_t k) {                                                                            \
      const acc_t v = static_cast<acc_t>(x[k]) + (STEP ? static_cast<acc_t>(b[k]) : b0);                       \
      const acc_t gk = M != kForward ? static_cast<acc_t>(g[k]) : acc_t(0);                                    \
      const acc_t ggk = M == kGrad2 ? static_cast<acc_t>(gg[k]) : acc_t(0);                                    \
      return static_cast<scalar_t>(bias_act_element<A, M, CM, acc_t>(v, gk, ggk, alpha, gain, clamp));        \
    };                                                                                                         \
    acc_t total = 0;                                                                                           \
    int64_t k = 0;                                                                                             \
    if (R == kSumRun) {                                                                                        \
      constexpr int kLanes = 16;                                                                               \
      acc_t lanes[kLanes] = {};                                                                                \
      for (; k + kLanes <= n; k += kLanes) {                                                                   \
        for (int j = 0; j < kLanes; ++j) {                                                                     \
          const scalar_t o = element(k + j);                                                                  \
          out[k + j] = o;                                                                                      \
          lanes[j] += static_cast<acc_t>(o);                                                                   \
        }                                                                                                      \
      }                                                                                                        \
      for (int j = 0; j < kLanes; ++j) total += lanes[j];                                                      \
    }                                                                                                          \
    for (; k < n; ++k) {                                                                                       \
      const scalar_t o = element(k);                                                                           \
      out[k] = o;                                                                                              \
      if (R == kSumRun) total += static_cast<acc_t>(o);                                                        \
      if (R == kAddRow) acc[k] += static_cast<acc_t>(o);                                                       \
    }                                                                                                          \
    return total;                                                                                              \
  }

#if defined(__GNUC__) && !defined(__clang__)
// GCC sinks a value used in only one arm of a select (exp in tanh/expm1) into a
// branch, which then stops the vectoriser; keep both arms computed.
#pragma GCC push_options
#pragma GCC optimize("no-tree-sink")
#endif

namespace baseline {
GAN_FAST_DEFINE_RUN_INNER
}  // namespace baseline

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define GAN_FAST_HAVE_AVX2_LOOPS 1
#pragma GCC target("avx2,fma")
namespace avx2 {
GAN_FAST_DEFINE_RUN_INNER
}  // namespace avx2
#endif

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#ifdef GAN_FAST_HAVE_AVX2_LOOPS
bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
#endif

template <typename scalar_t, int A, int M, int CM, bool STEP, int R = kNoReduce>
inline at::opmath_type<scalar_t> run_inner(const scalar_t* x, const scalar_t* b, const scalar_t* g,
                                           const scalar_t* gg, scalar_t* out, int64_t n,
                                           at::opmath_type<scalar_t> alpha, at::opmath_type<scalar_t> gain,
                                           at::opmath_type<scalar_t> clamp,
                                           at::opmath_type<scalar_t>* acc = nullptr) {
#ifdef GAN_FAST_HAVE_AVX2_LOOPS
  if (cpu_has_avx2()) {
    return avx2::run_inner<scalar_t, A, M, CM, STEP, R>(x, b, g, gg, out, n, alpha, gain, clamp, acc);
  }
#endif
  return baseline::run_inner<scalar_t, A, M, CM, STEP, R>(x, b, g, gg, out, n, alpha, gain, clamp, acc);
}

template <typename scalar_t, int A, int M, int CM>
void run_with_db(const scalar_t* x, const scalar_t* b, const scalar_t* g, const scalar_t* gg, scalar_t* out,
                 scalar_t* db, int64_t numel, int64_t C, int64_t S, double alpha_d, double gain_d, double clamp_d) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t alpha = static_cast<acc_t>(alpha_d);
  const acc_t gain = static_cast<acc_t>(gain_d);
  const acc_t clamp = static_cast<acc_t>(clamp_d);
  if (C == 1) S = kGrain;  // one channel: runs of kGrain elements (the last one shorter)
  const int64_t O = (numel + C * S - 1) / (C * S);
  // Runs (S > 1): a unit is OB consecutive o times CB channels; rows (S == 1): RB rows times CB channels.
  // At least 8 (o, s) pairs per partial row, so the partials take at most numel / 8 + C entries.
  const int64_t CB = S == 1 ? std::min<int64_t>(C, kGrain) : std::min<int64_t>(C, std::max<int64_t>(1, kGrain / S));
  const int64_t OB = std::max<int64_t>({int64_t(1), (8 + S - 1) / S, kGrain / (CB * S)});
  const int64_t nCB = (C + CB - 1) / CB;
  const int64_t nOB = (O + OB - 1) / OB;
  std::unique_ptr<acc_t[]> partial(new acc_t[nOB * C]);
  at::parallel_for(0, nOB * nCB, 1, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t ob = u / nCB, c0 = (u % nCB) * CB;
      const int64_t nc = std::min(CB, C - c0);
      const int64_t o_end = std::min(O, (ob + 1) * OB);
      acc_t* P = partial.get() + ob * C + c0;
      std::fill(P, P + nc, acc_t(0));
      for (int64_t o = ob * OB; o < o_end; ++o) {
        if (S == 1) {  // a row: the bias advances with the element
          const int64_t i = o * C + c0;
          run_inner<scalar_t, A, M, CM, true, kAddRow>(x + i, b + c0, g + i, gg != nullptr ? gg + i : nullptr,
                                                       out + i, nc, alpha, gain, clamp, P);
          continue;
        }
        for (int64_t c = c0; c < c0 + nc; ++c) {  // one run of S elements per channel
          const int64_t i = (o * C + c) * S, len = std::min(S, numel - i);  // C == 1: the last one is short
          P[c - c0] += run_inner<scalar_t, A, M, CM, false, kSumRun>(
              x + i, b + c, g + i, gg != nullptr ? gg + i : nullptr, out + i, len, alpha, gain, clamp);
        }
      }
    }
  });
  at::parallel_for(0, C, 256, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      acc_t total = 0;
      for (int64_t r = 0; r < nOB; ++r) total += partial[r * C + c];
      db[c] = static_cast<scalar_t>(total);
    }
  });
}

template <typename scalar_t, int A, int M, int CM>
void run(const scalar_t* x, const scalar_t* b, const scalar_t* g, const scalar_t* gg, scalar_t* out, int64_t numel,
         int64_t C, int64_t stride_c, double alpha_d, double gain_d, double clamp_d) {
  using acc_t = at::opmath_type<scalar_t>;
  const acc_t alpha = static_cast<acc_t>(alpha_d);
  const acc_t gain = static_cast<acc_t>(gain_d);
  const acc_t clamp = static_cast<acc_t>(clamp_d);
  at::parallel_for(0, numel, kGrain, [&](int64_t begin, int64_t end) {
    auto body = [&](int64_t i, int64_t n, const scalar_t* bp, bool step) {
      const scalar_t* gi = g != nullptr ? g + i : nullptr;
      const scalar_t* ggi = gg != nullptr ? gg + i : nullptr;
      if (step) {
        run_inner<scalar_t, A, M, CM, true>(x + i, bp, gi, ggi, out + i, n, alpha, gain, clamp);
      } else {
        run_inner<scalar_t, A, M, CM, false>(x + i, bp, gi, ggi, out + i, n, alpha, gain, clamp);
      }
    };
    if (b == nullptr || C == 1) {
      body(begin, end - begin, b, false);
    } else if (stride_c == 1) {  // channels innermost: the bias advances with the element
      int64_t c = begin % C;
      for (int64_t i = begin; i < end;) {
        const int64_t n = std::min(C - c, end - i);
        body(i, n, b + c, true);
        i += n;
        c = 0;
      }
    } else {  // runs of `stride_c` elements share one channel
      int64_t c = (begin / stride_c) % C;
      int64_t r = begin % stride_c;
      for (int64_t i = begin; i < end;) {
        const int64_t n = std::min(stride_c - r, end - i);
        body(i, n, b + c, false);
        i += n;
        r = 0;
        if (++c == C) c = 0;
      }
    }
  });
}

// The device launcher used by the shared entry points in bias_act.h.
struct Launcher {
  template <int M>
  static void launch(const at::Tensor& x, const at::Tensor& b, const at::Tensor& g, const at::Tensor& gg,
                     at::Tensor& out, int64_t act, double alpha, double gain, double clamp, int64_t C, int64_t stride_c) {
    TORCH_CHECK(x.device().is_cpu(), "gan_fast::bias_act (CPU kernel): x must be a CPU tensor, got ", x.device());
    TORCH_CHECK(act >= 0 && act < kNumActs, "gan_fast::bias_act: unknown activation code ", act);
    const int64_t numel = x.numel();
    if (numel == 0) return;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gan_fast::bias_act_cpu", [&] {
      const scalar_t* xp = x.const_data_ptr<scalar_t>();
      const scalar_t* bp = b.numel() > 0 ? b.const_data_ptr<scalar_t>() : nullptr;
      const scalar_t* gp = g.defined() ? g.const_data_ptr<scalar_t>() : nullptr;
      const scalar_t* ggp = gg.defined() ? gg.const_data_ptr<scalar_t>() : nullptr;
      scalar_t* op = out.mutable_data_ptr<scalar_t>();
      GAN_FAST_DISPATCH_ACT(act, [&] {
        if (clamp >= 0) {
          run<scalar_t, kAct, M, kClamp>(xp, bp, gp, ggp, op, numel, C, stride_c, alpha, gain, clamp);
        } else {
          run<scalar_t, kAct, M, kNoClamp>(xp, bp, gp, ggp, op, numel, C, stride_c, alpha, gain, clamp);
        }
      });
    });
  }

  // As launch, and db[c] = the sum of `out` over channel c (db: C entries, x's dtype; b has C entries).
  template <int M>
  static void launch_db(const at::Tensor& x, const at::Tensor& b, const at::Tensor& g, const at::Tensor& gg,
                        at::Tensor& out, at::Tensor& db, int64_t act, double alpha, double gain, double clamp,
                        int64_t C, int64_t stride_c) {
    TORCH_CHECK(x.device().is_cpu(), "gan_fast::bias_act (CPU kernel): x must be a CPU tensor, got ", x.device());
    TORCH_CHECK(act >= 0 && act < kNumActs, "gan_fast::bias_act: unknown activation code ", act);
    const int64_t numel = x.numel();
    if (numel == 0) {
      db.zero_();
      return;
    }
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "gan_fast::bias_act_db_cpu", [&] {
      const scalar_t* xp = x.const_data_ptr<scalar_t>();
      const scalar_t* bp = b.const_data_ptr<scalar_t>();
      const scalar_t* gp = g.const_data_ptr<scalar_t>();
      const scalar_t* ggp = gg.defined() ? gg.const_data_ptr<scalar_t>() : nullptr;
      scalar_t* op = out.mutable_data_ptr<scalar_t>();
      scalar_t* dbp = db.mutable_data_ptr<scalar_t>();
      GAN_FAST_DISPATCH_ACT(act, [&] {
        if (clamp >= 0) {
          run_with_db<scalar_t, kAct, M, kClamp>(xp, bp, gp, ggp, op, dbp, numel, C, stride_c, alpha, gain, clamp);
        } else {
          run_with_db<scalar_t, kAct, M, kNoClamp>(xp, bp, gp, ggp, op, dbp, numel, C, stride_c, alpha, gain,
                                                   clamp);
        }
      });
    });
  }
};

}  // namespace

at::Tensor bias_act_fwd_cpu(const at::Tensor& x, const at::Tensor& b, int64_t act, double alpha, double gain,
                            std::optional<double> clamp, int64_t C, int64_t inner) {
  return bias_act_fwd_with<Launcher>(x, b, act, alpha, gain, clamp, C, inner);
}

at::Tensor bias_act_grad_cpu(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& b, int64_t act,
                             double alpha, double gain, std::optional<double> clamp, int64_t C, int64_t inner) {
  return bias_act_grad_with<Launcher>(dy, x, b, act, alpha, gain, clamp, C, inner);
}

at::Tensor bias_act_grad2_cpu(const at::Tensor& ddx, const at::Tensor& dy, const at::Tensor& x,
                              const at::Tensor& b, int64_t act, double alpha, double gain, std::optional<double> clamp, int64_t C,
                              int64_t inner) {
  return bias_act_grad2_with<Launcher>(ddx, dy, x, b, act, alpha, gain, clamp, C, inner);
}

std::tuple<at::Tensor, at::Tensor> bias_act_grad_db_cpu(const at::Tensor& dy, const at::Tensor& x,
                                                        const at::Tensor& b, int64_t act, double alpha, double gain,
                                                        std::optional<double> clamp, int64_t C, int64_t inner) {
  return bias_act_grad_db_with<Launcher>(dy, x, b, act, alpha, gain, clamp, C, inner);
}

std::tuple<at::Tensor, at::Tensor> bias_act_grad2_db_cpu(const at::Tensor& ddx, const at::Tensor& dy,
                                                         const at::Tensor& x, const at::Tensor& b, int64_t act,
                                                         double alpha, double gain, std::optional<double> clamp, int64_t C,
                                                         int64_t inner) {
  return bias_act_grad2_db_with<Launcher>(ddx, dy, x, b, act, alpha, gain, clamp, C, inner);
}

}  // namespace gan_fast
