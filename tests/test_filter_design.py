"""gan_fast.filter_design against formulas written here (Kaiser's, the windowed sinc, the jinc),
against values recorded from scipy 1.17.1, and (when scipy is installed) against scipy itself."""

import math
from decimal import Decimal, getcontext

import pytest
import torch

from gan_fast import filter_design as fd

# (numtaps, cutoff, width, fs): StyleGAN3-T's up-2 layer at 16 px, an up-4 layer, odd taps, a tiny filter
# with beta 0 (attenuation below 21 dB), a long one with beta from the > 50 dB branch.
DESIGNS = [(12, 2.0, 2 * 2.17, 32), (24, 5.657, 2 * 10.34, 64), (13, 3.0, 1.5, 16), (4, 1.0, 0.2, 8),
           (40, 0.7, 0.6, 4)]


def _i0(z: float) -> float:
    """Modified Bessel I0 by its power series sum ((z/2)^k / k!)^2."""
    terms, term, k = [], 1.0, 0
    while True:
        terms.append(term * term)
        k += 1
        term *= (z / 2) / k
        if term * term < 1e-18 * sum(terms):
            return math.fsum(terms)


def _kaiser(n: int, beta: float):
    if n == 1:
        return [1.0]
    return [_i0(beta * math.sqrt(max(0.0, 1 - (2 * k / (n - 1) - 1) ** 2))) / _i0(beta) for k in range(n)]


def _beta(n: int, width: float, fs: float) -> float:
    a = 2.285 * (n - 1) * math.pi * (width / (fs / 2)) + 7.95
    return 0.1102 * (a - 8.7) if a > 50 else (0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21) if a > 21 else 0.0)


def _j1(x: float) -> float:
    """Bessel J1 by its power series sum (-1)^k (x/2)^(2k+1) / (k! (k+1)!), in 60-digit decimals
    (the series cancels catastrophically in floating point for large x)."""
    getcontext().prec = 60
    h = Decimal(x) / 2
    term, total, k = h, Decimal(0), 0
    while abs(term) > Decimal(10) ** -40 or k < 5:
        total += term
        k += 1
        term = -term * h * h / (k * (k + 1))
    return float(total)


def _lowpass(n, cutoff, width, fs):
    c = cutoff / (fs / 2)
    win = _kaiser(n, _beta(n, width, fs))
    h = []
    for k in range(n):
        m = k - (n - 1) / 2
        sinc = 1.0 if m == 0 else math.sin(math.pi * c * m) / (math.pi * c * m)
        h.append(c * sinc * win[k])
    s = math.fsum(h)
    return torch.tensor([v / s for v in h], dtype=torch.float64)


def _radial(n, cutoff, width, fs):
    win = _kaiser(n, _beta(n, width, fs))
    h = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            r = math.hypot((i - (n - 1) / 2) / fs, (j - (n - 1) / 2) / fs)
            jinc = cutoff if r == 0 else _j1(2 * math.pi * cutoff * r) / (math.pi * r)
            h[i, j] = jinc * win[i] * win[j]
    return h / h.sum()


def test_kaiser_formulas():
    assert fd.kaiser_atten(12, 0.3) == pytest.approx(2.285 * 11 * math.pi * 0.3 + 7.95, rel=1e-15)
    # one value per branch, as scipy.signal.kaiser_beta(kaiser_atten(...)) gives them (scipy 1.17.1)
    assert fd.kaiser_beta(fd.kaiser_atten(12, 0.3)) == pytest.approx(2.3432722629066305, rel=1e-14)
    assert fd.kaiser_beta(fd.kaiser_atten(40, 0.6)) == pytest.approx(18.42850549894615, rel=1e-14)
    assert fd.kaiser_beta(fd.kaiser_atten(5, 0.1)) == 0.0
    for n, beta in ((1, 3.0), (2, 3.0), (7, 0.0), (12, 5.5), (25, 18.4)):
        w = fd.kaiser_window(n, beta)
        assert w.dtype == torch.float64 and w.shape == (n,)
        torch.testing.assert_close(w, torch.tensor(_kaiser(n, beta), dtype=torch.float64), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: f"{d[0]}taps")
def test_lowpass_matches_windowed_sinc(design):
    h = fd.lowpass_filter(*design, dtype=torch.float64)
    assert h.shape == (design[0],)
    torch.testing.assert_close(h, _lowpass(*design), rtol=1e-12, atol=1e-15)
    assert h.sum().item() == pytest.approx(1.0, abs=1e-14)
    torch.testing.assert_close(h, h.flip(0), rtol=0, atol=1e-16)  # linear phase
    f32 = fd.lowpass_filter(*design)
    assert f32.dtype == torch.float32 and torch.equal(f32, h.float())


@pytest.mark.parametrize("design", DESIGNS[:4], ids=lambda d: f"{d[0]}taps")
def test_radial_matches_jinc(design):
    h = fd.radial_lowpass_filter(*design, dtype=torch.float64)
    n = design[0]
    assert h.shape == (n, n)
    torch.testing.assert_close(h, _radial(*design), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(h, h.t(), rtol=0, atol=1e-17)  # circular symmetry
    torch.testing.assert_close(h, h.flip(0), rtol=0, atol=1e-17)
    assert torch.isfinite(h).all()  # odd taps: the jinc's limit at r = 0, not 0 / 0


def test_bessel_j1_accuracy():
    xs = [0.0, 1e-3, 0.5, 1.8411837813406593, 3.8317059702075125, 5.0, 7.3, 13.0, 27.5, 60.0]
    got = fd.bessel_j1(torch.tensor(xs, dtype=torch.float64))
    want = torch.tensor([_j1(x) for x in xs], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=2e-15)
    assert fd.bessel_j1(torch.tensor(-2.0, dtype=torch.float64)).item() == pytest.approx(-_j1(2.0), abs=1e-15)


def test_recorded_scipy_values():
    """Values printed by scipy 1.17.1: firwin(12, 2.0, width=4.34, fs=32) and the radial design of
    StyleGAN3-R's 12-tap filter (cutoff 22.627, half-width 41.373, fs 256), one corner quarter."""
    firwin = [0.02284206915309829, 0.0450939417022228, 0.0724378165597465, 0.10031805840402049,
              0.12319962283208215, 0.13610849134882985]
    h = fd.lowpass_filter(12, 2.0, 4.34, 32, dtype=torch.float64)
    torch.testing.assert_close(h[:6], torch.tensor(firwin, dtype=torch.float64), rtol=1e-13, atol=1e-16)
    radial = [[-1.7934612353884946e-06, -2.8480817247793445e-06, 1.499077578796197e-05, 6.604211257192578e-05,
               0.00013863279323137037, 0.0001933025129643752],
              [-2.8480817247793445e-06, 4.892512449462542e-05, 0.0003082742933659656, 0.0008680402571045997,
               0.0015886549379094707, 0.0021088686949659345],
              [1.499077578796197e-05, 0.0003082742933659656, 0.0013904571496913543, 0.0035175844667224274,
               0.00614239717918821, 0.00799994724674916],
              [6.604211257192578e-05, 0.0008680402571045997, 0.0035175844667224274, 0.008500231583702021,
               0.014514676241126725, 0.018725243611220268],
              [0.00013863279323137037, 0.0015886549379094707, 0.00614239717918821, 0.014514676241126725,
               0.024502130163788924, 0.0314527929226093],
              [0.0001933025129643752, 0.0021088686949659345, 0.00799994724674916, 0.018725243611220268,
               0.0314527929226093, 0.040286849511972644]]
    r = fd.radial_lowpass_filter(12, 22.627, 2 * 41.373, 256, dtype=torch.float64)
    torch.testing.assert_close(r[:6, :6], torch.tensor(radial, dtype=torch.float64), rtol=1e-11, atol=1e-17)
    assert torch.equal(fd.radial_lowpass_filter(12, 22.627, 2 * 41.373, 256), r.float())


def test_against_scipy():
    np = pytest.importorskip("numpy")
    signal = pytest.importorskip("scipy.signal")
    special = pytest.importorskip("scipy.special")
    for n, c, w, fs in DESIGNS:
        want = torch.from_numpy(signal.firwin(numtaps=n, cutoff=c, width=w, fs=fs))
        torch.testing.assert_close(fd.lowpass_filter(n, c, w, fs, dtype=torch.float64), want, rtol=1e-12,
                                   atol=1e-16)
        if n % 2:
            continue  # scipy's formula divides 0 by 0 at the centre tap
        x = (np.arange(n) - (n - 1) / 2) / fs
        r = np.hypot(*np.meshgrid(x, x))
        f = special.j1(2 * c * np.pi * r) / (np.pi * r) * np.outer(*[np.kaiser(n, _beta(n, w, fs))] * 2)
        torch.testing.assert_close(fd.radial_lowpass_filter(n, c, w, fs, dtype=torch.float64),
                                   torch.from_numpy(f / f.sum()), rtol=1e-11, atol=1e-16)


def test_design_entry_point():
    assert fd.design_lowpass_filter(1, 2.0, 4.0, 32) is None
    torch.testing.assert_close(fd.design_lowpass_filter(12, 2.0, 4.34, 32), fd.lowpass_filter(12, 2.0, 4.34, 32),
                               rtol=0, atol=0)
    r = fd.design_lowpass_filter(12, 2.0, 4.34, 32, radial=True)
    assert r.shape == (12, 12) and r.dtype == torch.float32
    assert fd.lowpass_filter(1, 2.0, 4.0, 32).tolist() == [1.0]
    h = fd.lowpass_filter(12, 2.0, 4.34, 32, dtype=torch.float16, device="cpu")
    assert h.dtype == torch.float16


def test_frequency_response():
    """Unit gain at DC, about -6 dB (0.5) at the cutoff, the stop band (past cutoff + width / 2) below -40 dB."""
    n, cutoff, width, fs = 24, 5.657, 2 * 10.34, 64
    h = fd.lowpass_filter(n, cutoff, width, fs, dtype=torch.float64)
    m = torch.arange(n, dtype=torch.float64) - (n - 1) / 2

    def response(f):
        return (h * torch.cos(2 * math.pi * f / fs * m)).sum().item()

    assert response(0.0) == pytest.approx(1.0, abs=1e-14)
    assert response(cutoff) == pytest.approx(0.5, abs=0.05)  # the window method: near, not at, -6 dB
    assert max(abs(response(f)) for f in torch.linspace(cutoff + width / 2, fs / 2, 50).tolist()) < 1e-2


@pytest.mark.parametrize("args,exc,match", [
    ((0, 2.0, 1.0, 8), ValueError, "numtaps"),
    ((2.5, 2.0, 1.0, 8), TypeError, "numtaps"),
    ((12, 4.0, 1.0, 8), ValueError, "cutoff"),
    ((12, -1.0, 1.0, 8), ValueError, "cutoff"),
    ((12, 2.0, 0.0, 8), ValueError, "width"),
    ((12, 2.0, float("nan"), 8), ValueError, "width"),
    ((12, 2.0, 1.0, float("inf")), ValueError, "fs"),
    ((12, "2", 1.0, 8), TypeError, "cutoff"),
])
def test_bad_arguments(args, exc, match):
    with pytest.raises(exc, match=match):
        fd.lowpass_filter(*args)
    with pytest.raises(exc, match=match):
        fd.radial_lowpass_filter(*args)
