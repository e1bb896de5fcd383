// bias_act: shared activation math (CPU and CUDA) and the kernel entry points.
//
// The activation codes match gan_fast/activations.py (keep them in sync):
//   0 linear, 1 relu, 2 lrelu, 3 tanh, 4 sigmoid, 5 elu, 6 selu, 7 softplus, 8 swish.
// Each activation gives f(v), f'(v) and f''(v) of the pre-activation v = x + b,
// written to agree with the derivatives PyTorch's autograd takes of the
// reference (including the value at kinks: relu'(0) = 0, lrelu'(0) = alpha,
// elu'(0) = alpha, softplus is linear above 20 like F.softplus).
//
// y      = clamp(f(v) * gain, -clamp, clamp)              (clamp < 0: no clamp)
// dx     = dy * gain * f'(v) * [-clamp <= f(v) * gain <= clamp]
// d_x    = ddx * dy * gain * f''(v) * [same mask]        (the second-order kernel)
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <tuple>

namespace gan_fast {

enum ActCode : int64_t {
  kLinear = 0,
  kRelu = 1,
  kLrelu = 2,
  kTanh = 3,
  kSigmoid = 4,
  kElu = 5,
  kSelu = 6,
  kSoftplus = 7,
  kSwish = 8,
  kNumActs = 9,
};

constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSoftplusThreshold = 20.0;

// Elementary functions. CUDA device code and double use the standard ones
// (exact to the last bit or two). Float on the CPU uses branch-free versions
// that the compiler vectorises (Cephes-style range reduction and polynomials,
// about 2 ulp) and that are right over the whole float range: exp is +inf above
// x ~ 88.72, gives correctly scaled subnormals down to x ~ -103.3 and 0 below,
// and keeps NaN.
namespace fm {

#if !defined(__CUDA_ARCH__)
inline float exp_full(float x) {
  // Selects that keep NaN (a NaN then flows through the arithmetic to the result).
  const float xc0 = x < -104.0f ? -104.0f : x;
  const float xc = xc0 > 89.0f ? 89.0f : xc0;  // exp(89) overflows: the scaling below gives +inf
  const float xs = xc != xc ? 0.0f : xc;       // NaN: n stays defined (the result is NaN through r)
  const float t = xs * 1.44269504088896341f;
  const int n = static_cast<int>(t + (t >= 0.0f ? 0.5f : -0.5f));  // in [-150, 128]
  const float fn = static_cast<float>(n);
  const float r = (xc - fn * 0.693359375f) - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * (r * r) + r + 1.0f;
  // 2^n as two normal powers of two (n alone would leave the exponent field below 1 or above 254),
  // so the result underflows to subnormals and 0, and overflows to inf, as the true exp does.
  const int n1 = n >> 1;
  const int n2 = n - n1;
  const int bits1 = (n1 + 127) << 23;
  const int bits2 = (n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &bits1, sizeof(s1));
  std::memcpy(&s2, &bits2, sizeof(s2));
  return (y * s1) * s2;
}

inline float expm1_full(float x) {
  // |x| < 0.5: Taylor series to x^8 / 8! (relative error < 1e-8); else exp(x) - 1.
  const float p =
      x * (1.0f + x * (0.5f + x * (1.0f / 6 + x * (1.0f / 24 + x * (1.0f / 120 + x * (1.0f / 720 +
      x * (1.0f / 5040 + x * (1.0f / 40320))))))));
  const float e = exp_full(x) - 1.0f;
  return std::fabs(x) < 0.5f ? p : e;  // NaN: e is NaN
}

inline float tanh_full(float x) {
  const float a = std::fabs(x);
  const float big = 1.0f - 2.0f / (exp_full(2.0f * a) + 1.0f);  // exp = inf for a > 44: 1
  const float z = x * x;
  const float small =
      x + x * z * ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) * z - 3.33332819422e-1f);
  const float signed_big = std::copysign(big, x);
  return a > 0.625f ? signed_big : small;  // NaN: small is NaN
}

inline float exp(float x) { return exp_full(x); }
inline float expm1(float x) { return expm1_full(x); }
inline float tanh(float x) { return tanh_full(x); }
#else
__device__ inline float exp(float x) { return ::expf(x); }
__device__ inline float expm1(float x) { return ::expm1f(x); }
__device__ inline float tanh(float x) { return ::tanhf(x); }
#endif
C10_HOST_DEVICE inline double exp(double x) { return ::exp(x); }
C10_HOST_DEVICE inline double expm1(double x) { return ::expm1(x); }
C10_HOST_DEVICE inline double tanh(double x) { return ::tanh(x); }

}  // namespace fm

// sigmoid(v) and 1 - sigmoid(v) = sigmoid(-v), each accurate (no cancellation) and right at the
// extremes: from e = exp(-|v|) in (0, 1], never an overflowing exp. sigmoid(-inf) = 0, sigmoid(inf) = 1,
// NaN stays NaN.
template <typename T>
struct Sigmoid2 {
  T s, sn;
  C10_HOST_DEVICE inline explicit Sigmoid2(T v) {
    const T e = fm::exp(v < T(0) ? v : -v);  // exp(-|v|); NaN: NaN
    const T r = T(1) / (T(1) + e);
    const T er = e * r;
    const bool pos = v >= T(0);
    s = pos ? r : er;
    sn = pos ? er : r;
  }
};

template <int A, typename T>
struct Act;

template <typename T>
struct Act<kLinear, T> {
  static C10_HOST_DEVICE inline T f(T v, T) { return v; }
  static C10_HOST_DEVICE inline T d1(T, T) { return T(1); }
  static C10_HOST_DEVICE inline T d2(T, T) { return T(0); }
};

template <typename T>
struct Act<kRelu, T> {
  // As torch.relu and its backward (threshold_backward on the result): NaN passes through.
  static C10_HOST_DEVICE inline T f(T v, T) { return v < T(0) ? T(0) : v; }
  static C10_HOST_DEVICE inline T d1(T v, T) { return v <= T(0) ? T(0) : T(1); }
  static C10_HOST_DEVICE inline T d2(T, T) { return T(0); }
};

template <typename T>
struct Act<kLrelu, T> {
  static C10_HOST_DEVICE inline T f(T v, T a) { return v > T(0) ? v : v * a; }
  static C10_HOST_DEVICE inline T d1(T v, T a) { return v > T(0) ? T(1) : a; }
  static C10_HOST_DEVICE inline T d2(T, T) { return T(0); }
};

template <typename T>
struct Act<kTanh, T> {
  static C10_HOST_DEVICE inline T f(T v, T) { return fm::tanh(v); }
  static C10_HOST_DEVICE inline T d1(T v, T) {
    T t = fm::tanh(v);
    return T(1) - t * t;
  }
  static C10_HOST_DEVICE inline T d2(T v, T) {
    T t = fm::tanh(v);
    return T(-2) * t * (T(1) - t * t);
  }
};

template <typename T>
struct Act<kSigmoid, T> {
  static C10_HOST_DEVICE inline T f(T v, T) { return Sigmoid2<T>(v).s; }
  static C10_HOST_DEVICE inline T d1(T v, T) {
    const Sigmoid2<T> q(v);
    return q.s * q.sn;
  }
  static C10_HOST_DEVICE inline T d2(T v, T) {
    const Sigmoid2<T> q(v);
    return q.s * q.sn * (q.sn - q.s);
  }
};

template <typename T>
struct Act<kElu, T> {
  // Conditions written as PyTorch writes them (f, f': v <= 0; its double backward: v < 0), so NaN
  // and 0 take the same branches as autograd on the reference.
  static C10_HOST_DEVICE inline T f(T v, T a) { return v <= T(0) ? fm::expm1(v) * a : v; }
  static C10_HOST_DEVICE inline T d1(T v, T a) { return v <= T(0) ? a * fm::exp(v) : T(1); }
  static C10_HOST_DEVICE inline T d2(T v, T a) { return v < T(0) ? a * fm::exp(v) : T(0); }
};

template <typename T>
struct Act<kSelu, T> {
  static C10_HOST_DEVICE inline T f(T v, T) {
    return v <= T(0) ? fm::expm1(v) * T(kSeluAlpha * kSeluScale) : v * T(kSeluScale);
  }
  static C10_HOST_DEVICE inline T d1(T v, T) {
    return v <= T(0) ? T(kSeluAlpha * kSeluScale) * fm::exp(v) : T(kSeluScale);
  }
  static C10_HOST_DEVICE inline T d2(T v, T) {
    return v < T(0) ? T(kSeluAlpha * kSeluScale) * fm::exp(v) : T(0);
  }
};

template <typename T>
struct Act<kSoftplus, T> {
  // Linear above the threshold as F.softplus; its double backward is 0 from the threshold on (NaN: NaN).
  static C10_HOST_DEVICE inline T f(T v, T) {
    return v > T(kSoftplusThreshold) ? v : std::log1p(fm::exp(v));
  }
  static C10_HOST_DEVICE inline T d1(T v, T) { return v > T(kSoftplusThreshold) ? T(1) : Sigmoid2<T>(v).s; }
  static C10_HOST_DEVICE inline T d2(T v, T) {
    const Sigmoid2<T> q(v);
    return v >= T(kSoftplusThreshold) ? T(0) : q.s * q.sn;
  }
};

template <typename T>
struct Act<kSwish, T> {
  // v * sigmoid(v): 0 * -inf = NaN at -inf, as the reference (and F.silu).
  static C10_HOST_DEVICE inline T f(T v, T) { return Sigmoid2<T>(v).s * v; }
  static C10_HOST_DEVICE inline T d1(T v, T) {
    const Sigmoid2<T> q(v);
    return q.s * (T(1) + v * q.sn);
  }
  static C10_HOST_DEVICE inline T d2(T v, T) {
    const Sigmoid2<T> q(v);
    return q.s * q.sn * (T(2) + v * (q.sn - q.s));
  }
};

// torch.clamp(y, -c, c) for c >= 0: NaN stays NaN.
template <typename T>
C10_HOST_DEVICE inline T clamp_value(T y, T c) {
  const T lo = y < -c ? -c : y;
  return lo > c ? c : lo;
}

// Modes of the elementwise kernels.
enum Mode : int { kForward = 0, kGrad = 1, kGrad2 = 2 };

// How the clamp is handled: fixed at compile time (the CPU loops, which then
// have no branches and vectorise), or tested per element (the CUDA kernels,
// where the test is uniform across a warp).
enum ClampMode : int { kNoClamp = 0, kClamp = 1, kClampRuntime = 2 };

// One element: v = x + b; returns y (kForward), dx (kGrad) or d_x (kGrad2).
// `g` is dy for kGrad/kGrad2, `gg` is ddx for kGrad2. Written as selects, not
// early returns, so that loops over it vectorise.
template <int A, int M, int CM, typename T>
C10_HOST_DEVICE inline T bias_act_element(T v, T g, T gg, T alpha, T gain, T clamp) {
  const bool has_clamp = CM == kClamp || (CM == kClampRuntime && clamp >= T(0));
  if (M == kForward) {
    const T y = Act<A, T>::f(v, alpha) * gain;
    if (CM == kNoClamp) return y;
    return has_clamp ? clamp_value(y, clamp) : y;
  }
  const T d = M == kGrad ? g * gain * Act<A, T>::d1(v, alpha) : gg * g * gain * Act<A, T>::d2(v, alpha);
  if (CM == kNoClamp) return d;
  const T pre = Act<A, T>::f(v, alpha) * gain;
  const bool pass = (pre >= -clamp) & (pre <= clamp);  // torch.clamp's gradient mask (NaN: blocked)
  return (pass | !has_clamp) ? d : T(0);
}

// Calls F::template run<A>() for the runtime activation code.
#define GAN_FAST_DISPATCH_ACT(code, ...)                                            \
  [&] {                                                                             \
    switch (code) {                                                                 \
      case ::gan_fast::kLinear: { constexpr int kAct = 0; return __VA_ARGS__(); }   \
      case ::gan_fast::kRelu: { constexpr int kAct = 1; return __VA_ARGS__(); }     \
      case ::gan_fast::kLrelu: { constexpr int kAct = 2; return __VA_ARGS__(); }    \
      case ::gan_fast::kTanh: { constexpr int kAct = 3; return __VA_ARGS__(); }     \
      case ::gan_fast::kSigmoid: { constexpr int kAct = 4; return __VA_ARGS__(); }  \
      case ::gan_fast::kElu: { constexpr int kAct = 5; return __VA_ARGS__(); }      \
      case ::gan_fast::kSelu: { constexpr int kAct = 6; return __VA_ARGS__(); }     \
      case ::gan_fast::kSoftplus: { constexpr int kAct = 7; return __VA_ARGS__(); } \
      case ::gan_fast::kSwish: { constexpr int kAct = 8; return __VA_ARGS__(); }    \
      default: TORCH_CHECK(false, "gan_fast::bias_act: unknown activation code ", code); \
    }                                                                               \
  }()

// Argument handling shared by the CPU and CUDA entry points.
//
// (C, inner) describe the bias dimension logically, as for a contiguous tensor:
// C = x.shape[dim], inner = prod(x.shape[dim+1:]) (the convention of the Triton
// launchers in kernels/bias_act.py, so both kernel sets take the same
// arguments). x may have any dense memory format: the kernels walk memory
// linearly and find the channel of memory offset i as (i / stride_c) % C, with
// stride_c = x.stride(dim) located from (C, inner). A non-dense x is first
// copied to torch.empty_like(x) (dense, same dimension order), so outputs
// always have the strides of empty_like(x), as the fake implementation says.
struct BiasActOperands {
  at::Tensor x, b;
  int64_t stride_c;
};

inline int64_t channel_stride(const at::Tensor& x, int64_t C, int64_t inner) {
  if (C <= 1) return 1;
  int64_t prod = 1;
  for (int64_t d = x.dim() - 1; d >= 0; --d) {
    if (x.size(d) == C && prod == inner) return x.stride(d);
    prod *= x.size(d);
  }
  TORCH_CHECK(false, "gan_fast::bias_act: no dimension of x ", x.sizes(), " has C = ", C,
              " entries with inner = prod(x.shape[dim+1:]) = ", inner);
  return 1;
}

inline BiasActOperands prepare_bias_act(const at::Tensor& x_in, const at::Tensor& b, int64_t C, int64_t inner) {
  TORCH_CHECK(x_in.is_floating_point(), "gan_fast::bias_act: x must be floating point, got ", x_in.scalar_type());
  BiasActOperands ops;
  ops.x = x_in;
  if (!x_in.is_non_overlapping_and_dense()) {
    ops.x = at::empty_like(x_in);
    ops.x.copy_(x_in);
  }
  ops.stride_c = 1;
  ops.b = b;
  if (b.numel() == 0) return ops;
  TORCH_CHECK(b.dim() == 1 && b.numel() == C, "gan_fast::bias_act: b must have C = ", C, " entries, got shape ",
              b.sizes());
  TORCH_CHECK(b.device() == x_in.device(), "gan_fast::bias_act: b is on ", b.device(), " but x is on ",
              x_in.device());
  ops.b = b.to(x_in.scalar_type()).contiguous();  // the reference adds b cast to x.dtype
  ops.stride_c = channel_stride(ops.x, C, inner);
  return ops;
}

// `t` with x's strides and dtype (copied when they differ), so that one memory
// offset indexes the same element in every operand.
inline at::Tensor like_x(const at::Tensor& t, const at::Tensor& x, const char* name) {
  TORCH_CHECK(t.sizes() == x.sizes(), "gan_fast::bias_act: ", name, " has shape ", t.sizes(), " but x has ",
              x.sizes());
  TORCH_CHECK(t.device() == x.device(), "gan_fast::bias_act: ", name, " is on ", t.device(), " but x is on ",
              x.device());
  if (t.scalar_type() == x.scalar_type() && t.strides() == x.strides()) return t;
  at::Tensor out = at::empty_like(x);
  out.copy_(t);
  return out;
}

// The ops take the clamp as `float?` (None: no clamp); the kernels below read a negative clamp as none.
inline double no_clamp_below_zero(const std::optional<double>& clamp) {
  return clamp.has_value() ? *clamp : -1.0;
}

// The bodies of the entry points, shared by the CPU and CUDA files. `Launch` is
// the device's launcher: `template <int M> static void launch(x, b, g, gg, out, act,
// alpha, gain, clamp, C, stride_c)`, writing `out` in mode M.
template <typename Launch>
at::Tensor bias_act_fwd_with(const at::Tensor& x, const at::Tensor& b, int64_t act, double alpha, double gain,
                             std::optional<double> clamp, int64_t C, int64_t inner) {
  const BiasActOperands o = prepare_bias_act(x, b, C, inner);
  at::Tensor y = at::empty_like(o.x);
  Launch::template launch<kForward>(o.x, o.b, at::Tensor(), at::Tensor(), y, act, alpha, gain, no_clamp_below_zero(clamp), C, o.stride_c);
  return y;
}

template <typename Launch>
at::Tensor bias_act_grad_with(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& b, int64_t act,
                              double alpha, double gain, std::optional<double> clamp, int64_t C, int64_t inner) {
  const BiasActOperands o = prepare_bias_act(x, b, C, inner);
  at::Tensor g = like_x(dy, o.x, "dy");
  at::Tensor dx = at::empty_like(o.x);
  Launch::template launch<kGrad>(o.x, o.b, g, at::Tensor(), dx, act, alpha, gain, no_clamp_below_zero(clamp), C, o.stride_c);
  return dx;
}

template <typename Launch>
at::Tensor bias_act_grad2_with(const at::Tensor& ddx, const at::Tensor& dy, const at::Tensor& x, const at::Tensor& b,
                               int64_t act, double alpha, double gain, std::optional<double> clamp, int64_t C, int64_t inner) {
  const BiasActOperands o = prepare_bias_act(x, b, C, inner);
  at::Tensor g = like_x(dy, o.x, "dy");
  at::Tensor gg = like_x(ddx, o.x, "ddx");
  at::Tensor out = at::empty_like(o.x);
  Launch::template launch<kGrad2>(o.x, o.b, g, gg, out, act, alpha, gain, no_clamp_below_zero(clamp), C, o.stride_c);
  return out;
}

// The gradient kernels with the bias gradient folded in: (out, db), db[c] = out summed over every element of
// channel c, in x's dtype (accumulated in float32, or float64 for double). `Launch::launch_db<M>(x, b, g, gg,
// out, db, act, alpha, gain, clamp, C, stride_c)` writes both; b must have C entries.
inline at::Tensor empty_db(const BiasActOperands& o, const at::Tensor& b, int64_t C) {
  TORCH_CHECK(b.dim() == 1 && b.numel() == C, "gan_fast::bias_act: the bias gradient needs b with C = ", C,
              " entries, got shape ", b.sizes());
  return at::empty({C}, o.x.options().memory_format(at::MemoryFormat::Contiguous));
}

template <typename Launch>
std::tuple<at::Tensor, at::Tensor> bias_act_grad_db_with(const at::Tensor& dy, const at::Tensor& x,
                                                         const at::Tensor& b, int64_t act, double alpha,
                                                         double gain, std::optional<double> clamp, int64_t C, int64_t inner) {
  const BiasActOperands o = prepare_bias_act(x, b, C, inner);
  at::Tensor db = empty_db(o, b, C);
  at::Tensor g = like_x(dy, o.x, "dy");
  at::Tensor dx = at::empty_like(o.x);
  Launch::template launch_db<kGrad>(o.x, o.b, g, at::Tensor(), dx, db, act, alpha, gain, no_clamp_below_zero(clamp), C, o.stride_c);
  return {dx, db};
}

template <typename Launch>
std::tuple<at::Tensor, at::Tensor> bias_act_grad2_db_with(const at::Tensor& ddx, const at::Tensor& dy,
                                                          const at::Tensor& x, const at::Tensor& b, int64_t act,
                                                          double alpha, double gain, std::optional<double> clamp, int64_t C,
                                                          int64_t inner) {
  const BiasActOperands o = prepare_bias_act(x, b, C, inner);
  at::Tensor db = empty_db(o, b, C);
  at::Tensor g = like_x(dy, o.x, "dy");
  at::Tensor gg = like_x(ddx, o.x, "ddx");
  at::Tensor out = at::empty_like(o.x);
  Launch::template launch_db<kGrad2>(o.x, o.b, g, gg, out, db, act, alpha, gain, no_clamp_below_zero(clamp), C, o.stride_c);
  return {out, db};
}

// Kernel entry points (the schema is in ops.cpp). `b` may be empty (no bias), except for the *_db kernels.
at::Tensor bias_act_fwd_cpu(const at::Tensor& x, const at::Tensor& b, int64_t act, double alpha, double gain,
                            std::optional<double> clamp, int64_t C, int64_t inner);
at::Tensor bias_act_grad_cpu(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& b, int64_t act,
                             double alpha, double gain, std::optional<double> clamp, int64_t C, int64_t inner);
at::Tensor bias_act_grad2_cpu(const at::Tensor& ddx, const at::Tensor& dy, const at::Tensor& x,
                              const at::Tensor& b, int64_t act, double alpha, double gain, std::optional<double> clamp, int64_t C,
                              int64_t inner);
std::tuple<at::Tensor, at::Tensor> bias_act_grad_db_cpu(const at::Tensor& dy, const at::Tensor& x,
                                                        const at::Tensor& b, int64_t act, double alpha, double gain,
                                                        std::optional<double> clamp, int64_t C, int64_t inner);
std::tuple<at::Tensor, at::Tensor> bias_act_grad2_db_cpu(const at::Tensor& ddx, const at::Tensor& dy,
                                                         const at::Tensor& x, const at::Tensor& b, int64_t act,
                                                         double alpha, double gain, std::optional<double> clamp, int64_t C,
                                                         int64_t inner);
#ifdef GAN_FAST_WITH_CUDA
at::Tensor bias_act_fwd_cuda(const at::Tensor& x, const at::Tensor& b, int64_t act, double alpha, double gain,
                             std::optional<double> clamp, int64_t C, int64_t inner);
at::Tensor bias_act_grad_cuda(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& b, int64_t act,
                              double alpha, double gain, std::optional<double> clamp, int64_t C, int64_t inner);
at::Tensor bias_act_grad2_cuda(const at::Tensor& ddx, const at::Tensor& dy, const at::Tensor& x,
                               const at::Tensor& b, int64_t act, double alpha, double gain, std::optional<double> clamp,
                               int64_t C, int64_t inner);
std::tuple<at::Tensor, at::Tensor> bias_act_grad_db_cuda(const at::Tensor& dy, const at::Tensor& x,
                                                         const at::Tensor& b, int64_t act, double alpha, double gain,
                                                         std::optional<double> clamp, int64_t C, int64_t inner);
std::tuple<at::Tensor, at::Tensor> bias_act_grad2_db_cuda(const at::Tensor& ddx, const at::Tensor& dy,
                                                          const at::Tensor& x, const at::Tensor& b, int64_t act,
                                                          double alpha, double gain, std::optional<double> clamp, int64_t C,
                                                          int64_t inner);
#endif

}  // namespace gan_fast
