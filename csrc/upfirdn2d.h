// upfirdn2d: argument checks and index arithmetic shared by the CPU and CUDA kernels.
//
// y[n, c, oy, ox] = gain * sum_{i, j} fc[i, j] * u[oy * down_y + i, ox * down_x + j]
// where u is x upsampled (up-1 zeros after each sample) and padded by
// (px0, px1, py0, py1) (negative pads crop), and fc is the correlation filter:
// f itself when flip_filter, else f flipped in both axes (a true convolution).
// Only the taps that land on real samples are visited: for output row oy the
// input rows are iy = ceil((oy*down_y - py0) / up_y) .. floor((oy*down_y - py0 + fh - 1) / up_y),
// clipped to [0, H), with tap row i = iy*up_y - (oy*down_y - py0).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/outer.h>
#include <c10/macros/Macros.h>

#include <cstdint>
#include <limits>
#include <vector>

namespace gan_fast {

C10_HOST_DEVICE inline int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

C10_HOST_DEVICE inline int64_t ceil_div(int64_t a, int64_t b) {  // b > 0
  return -floor_div(-a, b);
}

struct UpFirDnParams {
  int64_t N, C, H, W, OH, OW;
  int64_t upx, upy, downx, downy;
  int64_t px0, py0;
  int64_t fw, fh;
};

// One kernel launch: geometry and the correlation filter [fh, fw] in the
// accumulation dtype with the gain folded in.
struct UpFirDnPass {
  UpFirDnParams p;
  at::Tensor fc;
};

// A separable (1-D) filter runs as two 1-D passes (x, then y, with a float
// intermediate) when the one-pass outer product would read at least this
// many input samples per output; otherwise as one pass with outer(f, f).
constexpr int64_t kSeparableTwoPassMinTaps = 16;

// Every geometry term (a size times up, a pad, a filter size) is at most 2**60 in magnitude, so that the
// output sizes and all the index arithmetic of the kernels (sums of a few such terms) fit in int64.
constexpr int64_t kGeometryLimit = int64_t(1) << 60;

// The output size along one axis: floor((in * up + pad0 + pad1 - taps) / down) + 1, computed without
// overflow, or a clear error. `axis` is "x" or "y".
inline int64_t checked_output_size(const char* axis, int64_t in, int64_t up, int64_t down, int64_t pad0,
                                   int64_t pad1, int64_t taps) {
  TORCH_CHECK(in <= kGeometryLimit / up, "gan_fast::upfirdn2d: the upsampled size along ", axis, " (", in,
              " samples * up ", up, ") is too large: the output size would overflow (at most 2**60)");
  TORCH_CHECK(pad0 >= -kGeometryLimit && pad0 <= kGeometryLimit && pad1 >= -kGeometryLimit &&
                  pad1 <= kGeometryLimit && taps <= kGeometryLimit,
              "gan_fast::upfirdn2d: padding along ", axis, " (", pad0, ", ", pad1, ") or filter size ", taps,
              " is too large: the output size would overflow (at most 2**60 in magnitude)");
  return floor_div(in * up + pad0 + pad1 - taps, down) + 1;
}

// a * b for a, b >= 0, or -1 when it does not fit in int64.
inline int64_t product_or_negative(int64_t a, int64_t b) {
  return (b == 0 || a <= std::numeric_limits<int64_t>::max() / b) ? a * b : -1;
}

inline at::Tensor correlation_filter(const at::Tensor& f, bool flip_filter, double gain, at::ScalarType acc) {
  at::Tensor fc = flip_filter ? f : f.flip({0, 1});  // the kernels correlate; a true convolution flips f
  return fc.to(acc).mul(gain).contiguous();
}

// Checks the arguments, allocates the output (channels_last when x is, else
// contiguous) and plans the passes: one for a 2-D filter, one or two for a
// separable 1-D filter f (meaning outer(f, f), as in the reference).
inline std::vector<UpFirDnPass> plan_upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy,
                                               int64_t downx, int64_t downy, int64_t px0, int64_t px1,
                                               int64_t py0, int64_t py1, bool flip_filter, double gain,
                                               at::Tensor& out) {
  TORCH_CHECK(x.dim() == 4, "gan_fast::upfirdn2d: x must be 4-D [N, C, H, W], got shape ", x.sizes());
  TORCH_CHECK(x.is_floating_point(), "gan_fast::upfirdn2d: x must be floating point, got ", x.scalar_type());
  TORCH_CHECK((f.dim() == 2 || f.dim() == 1) && f.numel() > 0,
              "gan_fast::upfirdn2d: f must be a non-empty [fh, fw] or separable [ft] filter, got shape ", f.sizes());
  TORCH_CHECK(f.device() == x.device(), "gan_fast::upfirdn2d: f is on ", f.device(), " but x is on ", x.device());
  TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1,
              "gan_fast::upfirdn2d: up and down must be >= 1, got up=(", upx, ", ", upy, ") down=(", downx, ", ",
              downy, ")");
  UpFirDnParams p;
  p.N = x.size(0);
  p.C = x.size(1);
  p.H = x.size(2);
  p.W = x.size(3);
  p.fh = f.size(0);
  p.fw = f.size(-1);
  p.upx = upx;
  p.upy = upy;
  p.downx = downx;
  p.downy = downy;
  p.px0 = px0;
  p.py0 = py0;
  p.OW = checked_output_size("x", p.W, upx, downx, px0, px1, p.fw);
  p.OH = checked_output_size("y", p.H, upy, downy, py0, py1, p.fh);
  TORCH_CHECK(p.OW >= 1 && p.OH >= 1, "gan_fast::upfirdn2d: the padding and filter leave no output (", p.OH, "x",
              p.OW, ") for x of shape ", x.sizes());
  const int64_t plane = product_or_negative(p.OH, p.OW);
  const int64_t batch = product_or_negative(p.N, p.C);
  TORCH_CHECK(plane >= 0 && batch >= 0 && product_or_negative(batch, plane) >= 0,
              "gan_fast::upfirdn2d: the output [", p.N, ", ", p.C, ", ", p.OH, ", ", p.OW,
              "] has more elements than int64 can count");
  const bool channels_last = x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous();
  const auto format = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  out = at::empty({p.N, p.C, p.OH, p.OW}, x.options().memory_format(format));
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  if (f.dim() == 2) return {{p, correlation_filter(f, flip_filter, gain, acc)}};
  const int64_t ft = f.size(0);
  if (ceil_div(ft, upx) * ceil_div(ft, upy) < kSeparableTwoPassMinTaps) {
    return {{p, correlation_filter(at::outer(f, f), flip_filter, gain, acc)}};
  }
  UpFirDnParams px = p, py = p;  // x pass: [H, W] -> [H, OW]; y pass: [H, OW] -> [OH, OW]
  px.OH = p.H;
  px.upy = px.downy = 1;
  px.py0 = 0;
  px.fh = 1;
  py.W = p.OW;
  py.upx = py.downx = 1;
  py.px0 = 0;
  py.fw = 1;
  return {{px, correlation_filter(f.reshape({1, ft}), flip_filter, gain, acc)},
          {py, correlation_filter(f.reshape({ft, 1}), flip_filter, 1.0, acc)}};
}

// The intermediate of a two-pass plan: [N, C, H, OW] in the accumulation dtype, x's memory format.
inline at::Tensor intermediate(const at::Tensor& out, const UpFirDnParams& px, at::ScalarType acc) {
  return at::empty({px.N, px.C, px.OH, px.OW}, out.options().dtype(acc).memory_format(out.suggest_memory_format()));
}

at::Tensor upfirdn2d_fwd_cpu(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                             int64_t downy, int64_t px0, int64_t px1, int64_t py0, int64_t py1, bool flip_filter,
                             double gain);
#ifdef GAN_FAST_WITH_CUDA
at::Tensor upfirdn2d_fwd_cuda(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                              int64_t downy, int64_t px0, int64_t px1, int64_t py0, int64_t py1, bool flip_filter,
                              double gain);
#endif

}  // namespace gan_fast
