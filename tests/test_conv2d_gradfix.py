"""no_weight_gradients(): skips weight gradients, keeps input gradients and double backward exact."""

import threading

import pytest
import torch
import torch.nn.functional as F

from gan_fast import conv2d_gradfix, ops


def _data(transpose=False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    shape = (3, 4, 3, 3) if transpose else (4, 3, 3, 3)
    w = torch.randn(*shape, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=g, requires_grad=True)
    return x, w, b


def test_matches_torch_forward_and_backward():
    x, w, b = _data()
    y = ops.conv2d(x, w, b, stride=2, padding=1)
    torch.testing.assert_close(y, F.conv2d(x, w, b, stride=2, padding=1))
    got = torch.autograd.grad(y.square().sum(), [x, w, b])
    want = torch.autograd.grad(F.conv2d(x, w, b, stride=2, padding=1).square().sum(), [x, w, b])
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e)
    xt, wt, bt = _data(transpose=True)
    yt = ops.conv_transpose2d(xt, wt, bt, stride=2, padding=1, output_padding=1)
    torch.testing.assert_close(yt, F.conv_transpose2d(xt, wt, bt, stride=2, padding=1, output_padding=1))


def test_gradcheck_gradgradcheck():
    x, w, b = _data()
    assert torch.autograd.gradcheck(lambda x, w, b: ops.conv2d(x, w, b, padding=1, groups=1), (x, w, b))
    assert torch.autograd.gradgradcheck(lambda x, w, b: ops.conv2d(x, w, b, padding=1), (x, w, b))
    xt, wt, bt = _data(transpose=True)
    assert torch.autograd.gradgradcheck(lambda x, w, b: ops.conv_transpose2d(x, w, b, stride=2), (xt, wt, bt))


def test_weight_gradient_skipped_inside_context():
    x, w, b = _data()
    y = ops.conv2d(x, w, b, padding=1)  # forward outside the context, as in a StyleGAN2 R1 step
    with ops.no_weight_gradients():
        gx, gw, gb = torch.autograd.grad(y.sum(), [x, w, b], create_graph=True, allow_unused=True)
    assert gw is None
    want = torch.autograd.grad(F.conv2d(x, w, b, padding=1).sum(), x)[0]
    torch.testing.assert_close(gx, want)
    # After the block, weight gradients are back.
    assert torch.autograd.grad(ops.conv2d(x, w, padding=1).sum(), w)[0] is not None


def test_flag_is_seen_by_other_threads():
    # On CUDA the autograd engine runs backward in its own device thread: a thread-local flag set
    # by the caller would never reach it.
    seen = []
    with ops.no_weight_gradients():
        t = threading.Thread(target=lambda: seen.append(conv2d_gradfix.weight_gradients_disabled()))
        t.start()
        t.join()
    assert seen == [True]
    assert not conv2d_gradfix.weight_gradients_disabled()


@pytest.mark.gpu
def test_weight_gradient_skipped_on_cuda():
    x, w, b = (t.detach().cuda().float().requires_grad_() for t in _data())
    y = ops.conv2d(x, w, b, padding=1)
    with ops.no_weight_gradients():
        y.sum().backward()
    assert w.grad is None and x.grad is not None and b.grad is not None


def test_r1_step_inside_context_gives_exact_weight_gradients():
    """The penalty's gradient w.r.t. the weights flows through the double backward."""
    def penalty(conv):
        x, w, b = _data()
        w2 = torch.randn(1, 4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        w2.requires_grad_()
        logits = conv(torch.tanh(conv(x, w, b, padding=1)), w2, None, padding=1)
        with ops.no_weight_gradients():
            (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        return torch.autograd.grad(g.square().sum(), [w, b, w2])

    ours, plain = penalty(ops.conv2d), penalty(F.conv2d)
    for a, e in zip(ours, plain):
        torch.testing.assert_close(a, e)


def test_autocast_runs_in_the_autocast_dtype_like_f_conv2d():
    x, w, b = (t.detach().float().requires_grad_() for t in _data())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ops.conv2d(x, w, b, padding=1)
        want = F.conv2d(x, w, b, padding=1)
    assert got.dtype == want.dtype == torch.bfloat16
    torch.testing.assert_close(got, want)
    gx = torch.autograd.grad(got.float().sum(), x)[0]
    assert gx.dtype == torch.float32 and torch.isfinite(gx).all()


def test_plain_convolutions_keep_weight_gradients_on_this_thread_only():
    """The compat modules' enabled=False: within plain_convolutions() the forward picks F.conv2d."""
    x, w, b = _data()
    seen = []
    with conv2d_gradfix.plain_convolutions():
        y = ops.conv2d(x, w, b, padding=1)
        t = threading.Thread(target=lambda: seen.append(conv2d_gradfix._use_plain()))
        t.start()
        t.join()
    assert seen == [False]
    with ops.no_weight_gradients():
        gw = torch.autograd.grad(y.sum(), w)[0]
    torch.testing.assert_close(gw, torch.autograd.grad(F.conv2d(x, w, b, padding=1).sum(), w)[0])
    assert not conv2d_gradfix._use_plain()
