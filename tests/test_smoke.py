"""The smoke subset a stack must pass (`.ci/versions` runs it on every supported stack, with
tests/test_self_test.py's per-backend checks and tests/test_version_shims.py): every module imports, and every
custom op of every backend module is registered after ``import gan_fast``."""

import importlib
import pkgutil

import pytest
import torch

import gan_fast

MODULES = sorted(m.name for m in pkgutil.walk_packages(gan_fast.__path__, "gan_fast.")
                 if ".examples." not in m.name and not m.name.endswith(("__main__", "._C")))  # _C: via extension


@pytest.mark.parametrize("name", MODULES)
def test_every_module_imports(name):
    importlib.import_module(name)


def test_every_custom_op_is_registered_after_import():
    import gan_fast.backends  # noqa: F401 - what `import gan_fast` imports

    expected = ["triton_bias_act_fwd", "triton_bias_act_grad", "triton_bias_act_grad2", "triton_bias_act_grad_db",
                "triton_bias_act_grad2_db", "bias_act_fwd", "bias_act_grad", "bias_act_grad2", "bias_act_grad_db",
                "bias_act_grad2_db", "triton_upfirdn2d_fwd", "upfirdn2d_fwd", "triton_filtered_lrelu_fwd",
                "triton_filtered_lrelu_bwd", "triton_gradient_norm_penalty", "triton_minibatch_discrimination",
                "triton_power_iteration", "triton_spectral_normalize", "triton_modconv_demod",
                "triton_demod_bias_act"]
    missing = [name for name in expected if not hasattr(torch.ops.gan_fast, name)]
    assert missing == []


def test_every_op_runs_on_ref_and_passes_the_judge():
    """ref against float64 ref through the self-test's own judge: each op's cases run on this stack."""
    from gan_fast import self_test

    for name in self_test.registered():
        ok, why = self_test.check(name, "ref", torch.device("cpu"), (torch.float32,))
        assert ok, (name, why)
