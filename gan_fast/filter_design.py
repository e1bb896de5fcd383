"""FIR low-pass filter design for alias-free (StyleGAN3) layers, written with torch only.

StyleGAN3 (Karras et al. 2021, "Alias-Free Generative Adversarial Networks") designs the
up- and down-sampling filters of each synthesis layer as Kaiser-windowed low-pass filters:

* :func:`lowpass_filter` — a separable 1-D filter, the same taps as
  ``scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)`` (window-method design with a
  Kaiser window whose ``beta`` follows Kaiser's empirical formulas, as ``scipy.signal.kaiserord``
  uses them, then scaled to unit gain at DC);
* :func:`radial_lowpass_filter` — the rotation-equivariant (StyleGAN3-R) 2-D filter: the ideal
  circularly symmetric low-pass response (a jinc, ``J1(2 pi fc r) / (pi r)``) times the outer
  product of the same 1-D Kaiser window, normalised to sum 1;
* :func:`design_lowpass_filter` — StyleGAN3's entry point: ``None`` for one tap (the identity,
  which :func:`gan_fast.ops.filtered_lrelu` treats as a 1x1 filter), else one of the above.

All frequencies are in the same unit as ``fs`` (StyleGAN3 uses cycles per image side for the
cutoff and half-width, samples per image side for ``fs``). Everything is computed in float64
(``torch.special.i0``; the Bessel function J1 by :func:`bessel_j1`, see there) and returned in
``dtype`` (float32 by default, as StyleGAN3 registers its filter buffers). No scipy or numpy is
needed.

Formulas (``numtaps`` = M, ``m = n - (M - 1) / 2`` for ``n = 0 .. M - 1``, ``nyq = fs / 2``):

* attenuation  ``A = 2.285 (M - 1) pi (width / nyq) + 7.95``  (dB; :func:`kaiser_atten`)
* Kaiser beta  ``0.1102 (A - 8.7)`` for A > 50, ``0.5842 (A - 21)^0.4 + 0.07886 (A - 21)`` for
  21 < A <= 50, else 0  (:func:`kaiser_beta`)
* window       ``w[n] = I0(beta sqrt(1 - (2 n / (M - 1) - 1)^2)) / I0(beta)``  (:func:`kaiser_window`)
* 1-D taps     ``h[n] = w[n] (cutoff / nyq) sinc((cutoff / nyq) m)``, divided by ``sum(h)``
* 2-D radial   ``h[y, x] = w[y] w[x] J1(2 pi cutoff r) / (pi r)``, ``r = hypot(m_x, m_y) / fs``
  (``cutoff`` at r = 0, the limit), divided by ``sum(h)``
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Optional

import torch

__all__ = ["bessel_j1", "kaiser_atten", "kaiser_beta", "kaiser_window", "lowpass_filter", "radial_lowpass_filter",
           "design_lowpass_filter"]


def _numtaps(numtaps) -> int:
    if isinstance(numtaps, bool):
        raise TypeError("numtaps must be an int >= 1, got bool")
    try:
        n = operator.index(numtaps)
    except TypeError:
        raise TypeError(f"numtaps must be an int >= 1, got {type(numtaps).__name__}") from None
    if n < 1:
        raise ValueError(f"numtaps must be >= 1, got {n}")
    return n


def _finite(name: str, value, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if positive and v <= 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    return v


def _check_band(numtaps, cutoff, width, fs):
    n = _numtaps(numtaps)
    fs = _finite("fs", fs)
    cutoff = _finite("cutoff", cutoff)
    width = _finite("width", width)
    if cutoff >= fs / 2:
        raise ValueError(f"cutoff must be below the Nyquist frequency fs / 2 = {fs / 2}, got {cutoff}")
    return n, cutoff, width, fs


def kaiser_atten(numtaps: int, width: float) -> float:
    """Kaiser's estimate of the stop-band attenuation (dB) of a ``numtaps``-tap filter whose
    transition band is ``width`` wide, as a fraction of the Nyquist frequency (scipy's
    ``kaiser_atten``): ``2.285 (numtaps - 1) pi width + 7.95``."""
    n = _numtaps(numtaps)
    width = _finite("width", width, positive=False)
    return 2.285 * (n - 1) * math.pi * width + 7.95


def kaiser_beta(atten: float) -> float:
    """Kaiser's window parameter ``beta`` for a stop-band attenuation of ``atten`` dB (scipy's
    ``kaiser_beta``)."""
    a = _finite("atten", atten, positive=False)
    if a > 50:
        return 0.1102 * (a - 8.7)
    if a > 21:
        return 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    return 0.0


def kaiser_window(numtaps: int, beta: float, dtype: torch.dtype = torch.float64,
                  device=None) -> torch.Tensor:
    """The symmetric Kaiser window of ``numtaps`` points (``numpy.kaiser``): [numtaps].

    Unlike ``torch.kaiser_window`` (periodic by default, and undefined at one point) this is the
    symmetric form used for filter design; one point gives ``[1]``.
    """
    n = _numtaps(numtaps)
    beta = _finite("beta", beta, positive=False)
    if n == 1:
        return torch.ones(1, dtype=dtype, device=device)
    k = torch.arange(n, dtype=torch.float64, device=device)
    t = 2 * k / (n - 1) - 1
    # clamp: 1 - t^2 is exactly 0 at both ends in exact arithmetic, a rounding error there must not go negative.
    arg = beta * torch.sqrt(torch.clamp(1 - t * t, min=0))
    w = torch.special.i0(arg) / torch.special.i0(torch.tensor(beta, dtype=torch.float64, device=device))
    return w.to(dtype)


def bessel_j1(x: torch.Tensor) -> torch.Tensor:
    """The Bessel function of the first kind of order 1, to float64 rounding (|error| < 1e-15).

    ``torch.special.bessel_j1`` is off by up to ~5e-7 in float64 (torch 2.x, near x = 5), more
    than a float32 filter tap can absorb, so this evaluates Bessel's integral
    ``J1(x) = 1 / (2 pi) * integral_0^{2 pi} cos(t - x sin t) dt`` with the trapezoidal rule on
    N points. The integrand is periodic and entire, so the rule's only error is the aliased
    terms ``J_{kN +- 1}(x)`` (k >= 1), each below ``(x / 2)^m / m!`` with ``m >= 2 |x| + 63``:
    negligible for N = 2 ceil(max |x|) + 64. Computed in float64; a design-time helper, not
    meant for large tensors (it materialises N values per element).
    """
    x = x.to(torch.float64)
    x_max = float(x.abs().max()) if x.numel() else 0.0
    points = 2 * math.ceil(x_max) + 64
    t = torch.arange(points, dtype=torch.float64, device=x.device) * (2 * math.pi / points)
    return torch.cos(t - x.unsqueeze(-1) * torch.sin(t)).mean(dim=-1)


def _design_window(n: int, width: float, fs: float, device) -> torch.Tensor:
    return kaiser_window(n, kaiser_beta(kaiser_atten(n, width / (fs / 2))), device=device)


def lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, dtype: torch.dtype = torch.float32,
                   device=None) -> torch.Tensor:
    """Kaiser-windowed linear-phase low-pass FIR: [numtaps], taps summing to 1.

    The same design as ``scipy.signal.firwin(numtaps, cutoff, width=width, fs=fs)`` (which
    StyleGAN3 calls for its separable filters): an ideal low-pass impulse response
    ``(2 cutoff / fs) sinc(2 cutoff m / fs)`` windowed by a Kaiser window with Kaiser's
    ``beta`` for transition ``width``, scaled to unit DC gain.

    Args:
        numtaps: number of taps (>= 1).
        cutoff: the cutoff frequency (the -6 dB point), 0 < cutoff < fs / 2.
        width: the transition band's width (> 0), which sets the Kaiser window's ``beta``.
        fs: the sampling rate.
        dtype, device: of the result (computed in float64).
    """
    n, cutoff, width, fs = _check_band(numtaps, cutoff, width, fs)
    device = torch.device("cpu") if device is None else device
    c = cutoff / (fs / 2)
    m = torch.arange(n, dtype=torch.float64, device=device) - (n - 1) / 2
    h = c * torch.sinc(c * m) * _design_window(n, width, fs, device)
    return (h / h.sum()).to(dtype)


def radial_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float,
                          dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Circularly symmetric (jinc) low-pass FIR of StyleGAN3-R: [numtaps, numtaps], taps summing to 1.

    ``h[y, x] = J1(2 pi cutoff r) / (pi r) * w[y] * w[x]`` with ``r`` the distance of tap
    (x, y) from the centre in units of ``1 / fs`` and ``w`` the Kaiser window
    :func:`lowpass_filter` would use; normalised to unit DC gain. At r = 0 (odd ``numtaps``)
    the jinc takes its limit, ``cutoff``. Arguments as :func:`lowpass_filter`.
    """
    n, cutoff, width, fs = _check_band(numtaps, cutoff, width, fs)
    device = torch.device("cpu") if device is None else device
    x = (torch.arange(n, dtype=torch.float64, device=device) - (n - 1) / 2) / fs
    r = torch.hypot(x[None, :], x[:, None])
    safe_r = torch.where(r > 0, r, torch.ones_like(r))
    jinc = torch.where(r > 0, bessel_j1(2 * math.pi * cutoff * safe_r) / (math.pi * safe_r),
                       torch.full_like(r, cutoff))
    w = _design_window(n, width, fs, device)
    h = jinc * w[:, None] * w[None, :]
    return (h / h.sum()).to(dtype)


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False,
                          dtype: torch.dtype = torch.float32, device=None) -> Optional[torch.Tensor]:
    """StyleGAN3's filter design: ``None`` for ``numtaps == 1`` (no filtering), else
    :func:`radial_lowpass_filter` when ``radial`` or :func:`lowpass_filter` (separable, 1-D).

    The result is what ``gan_fast.ops.filtered_lrelu`` takes as ``fu`` / ``fd`` (and what
    :class:`gan_fast.nn.AliasFreeSynthesisLayer` registers as ``up_filter`` / ``down_filter``).
    """
    if _numtaps(numtaps) == 1:
        return None
    design = radial_lowpass_filter if radial else lowpass_filter
    return design(numtaps, cutoff, width, fs, dtype=dtype, device=device)
