"""Launch decisions are pure functions of shapes, dtypes and a device description (issue 21).

Every launcher of ``gan_fast.kernels`` plans its launch (grid, split, block sizes, autotune configs, fuse
thresholds, dot precision) with a ``plan_*`` function of shapes, dtypes and a ``DeviceInfo``; the description of
a real device is read once, in ``gan_fast.kernels._device``, the only module that reads ``torch.cuda``
properties. So the decisions can be evaluated here, without a GPU, for a 132-SM sm_90 and a 108-SM sm_80.
"""

from __future__ import annotations

import ast
import os

import pytest
import torch

from gan_fast.kernels import _device
from gan_fast.kernels import bias_act as BA
from gan_fast.kernels import filtered_lrelu as FL
from gan_fast.kernels import gradient_norm_penalty as GNP
from gan_fast.kernels import minibatch_discrimination as MBD
from gan_fast.kernels import modulated_conv2d as MC
from gan_fast.kernels import modulated_conv2d_bias_act as MCBA
from gan_fast.kernels import spectral_norm as SN
from gan_fast.kernels import upfirdn2d as UFD

DEVICES = [_device.SM90, _device.SM80]
KERNELS_DIR = os.path.dirname(_device.__file__)


def test_the_described_devices():
    assert (_device.SM90.sm_count, _device.SM90.arch, _device.SM90.smem_per_sm) == (132, 90, 228 * 1024)
    assert (_device.SM80.sm_count, _device.SM80.arch, _device.SM80.smem_per_sm) == (108, 80, 164 * 1024)
    for dev in DEVICES:
        assert (dev.regs_per_sm, dev.max_warps_per_sm, dev.max_blocks_per_sm) == (65536, 64, 32)
        assert not dev.interpreter
    assert _device.INTERPRETER.interpreter


def test_occupancy_formula():
    occ = _device.occupancy
    assert occ(_device.SM90, 255, 0, 4)[:2] == (0.125, 2)       # 8160 -> 8192 registers a warp: 8 warps
    assert occ(_device.SM90, 168, 0, 4)[:2] == (0.1875, 3)      # the synthesis epilogue's 19%
    assert occ(_device.SM90, 128, 0, 4)[:2] == (0.25, 4)
    assert occ(_device.SM90, 32, 0, 4)[:2] == (1.0, 16)
    assert occ(_device.SM90, 16, 0, 1)[:3] == (0.5, 32, "blocks")  # 32 blocks a SM at most
    # shared memory: 100 KB + 1 KB reserved a block -> 2 blocks in 228 KB, 1 in 164 KB
    assert occ(_device.SM90, 64, 100 * 1024, 4)[1:] == (2, "shared memory")
    assert occ(_device.SM80, 64, 100 * 1024, 4)[1:] == (1, "shared memory")


@pytest.mark.parametrize("dev", DEVICES, ids=lambda d: d.name)
def test_gradient_norm_forward_fills_the_gpu(dev):
    plan = GNP.plan_gnp_forward(32, 3 * 256 * 256, dev)     # the R1 step's image gradient [32, 3, 256, 256]
    assert plan.grid[0] >= dev.sm_count
    assert plan.split * plan.chunk >= 3 * 256 * 256 > (plan.split - 1) * plan.chunk
    assert plan.chunk % plan.block == 0 and plan.block_s >= plan.split
    assert GNP.plan_gnp_forward(32, 3 * 256 * 256, _device.INTERPRETER).grid == (32,)  # one program a sample
    assert GNP.plan_gnp_forward(4, 48, dev).grid == (4,)    # tiny: no split below 4 blocks a program


def test_the_gpu_split_depends_on_the_sm_count():
    a = GNP.plan_gnp_forward(8, 1 << 20, _device.SM90).grid[0]
    b = GNP.plan_gnp_forward(8, 1 << 20, _device.SM80).grid[0]
    assert a > b and a >= 3 * 132 and b >= 3 * 108


@pytest.mark.parametrize("dev", DEVICES, ids=lambda d: d.name)
def test_elementwise_and_tile_plans(dev):
    n = 32 * 128 * 256 * 256
    p = BA.plan_bias_act(n, 128, 256 * 256, dev)
    assert p.block == 1024 and p.grid == (n // 1024,) and not p.int64
    assert BA.plan_bias_act(n, 128, 256 * 256, _device.INTERPRETER).block == 4096
    assert BA.plan_bias_act(1 << 31, 4, 1, dev).int64
    db = BA.plan_bias_act_db(n, 128, 256 * 256, dev)
    assert not db.columns and db.n_rb * db.block_r >= db.nr and db.n_wb * db.block_w >= db.nw
    cols = BA.plan_bias_act_db(32 * 512, 512, 1, dev)           # a fully connected layer: columns
    assert cols.columns and cols.block_w == 128
    assert SN.plan_spectral_norm(dev) == SN.SNLaunchPlan(16, 256, 1024, 1 << 16, 8)
    assert SN.plan_spectral_norm(_device.INTERPRETER).fuse_max_numel == 1 << 30
    assert UFD.plan_upfirdn2d(128, 256, 256, False, 0, 0, dev).tuned == "nchw"
    assert UFD.plan_upfirdn2d(128, 256, 256, True, 0, 0, dev).tuned == "nhwc"
    interp = UFD.plan_upfirdn2d(128, 256, 256, False, 0, 0, _device.INTERPRETER)
    assert interp.tuned is None and interp.blocks["BLOCK_C"] * interp.blocks["BLOCK_P"] <= 4096
    dm = MC.plan_demod(32, 512, 512, 9, dev)
    assert dm.grid[0] * dm.blocks["BLOCK_B"] >= 32 and dm.grid[1] * dm.blocks["BLOCK_O"] >= 512
    assert MC.plan_scale_channels(n, dev)[0] == 1024
    dot = MC.plan_channel_dot(2, 512, 16, False, dev)          # few rows, tiny planes: no split below 8 blocks
    assert dot.splits == 1 and dot.grid == (1024, 1)
    dot = MC.plan_channel_dot(1, 4, 1 << 20, False, dev)       # few rows, large planes: split to fill the GPU
    assert dot.grid[0] * dot.grid[1] >= 3 * dev.sm_count
    m = MCBA.plan_modconv(torch.float16, True, dev)
    assert m.tuned and m.low and MCBA.plan_modconv(torch.float32, True, dev).precision == "tf32"
    assert MCBA.plan_modconv(torch.float32, False, dev).precision == "ieee"
    assert MCBA.plan_modconv(torch.float32, True, _device.INTERPRETER).blocks["BLOCK_K"] == 16
    ep = MCBA.plan_demod_bias_act(32 * 256 * 256, 128, False, dev)
    assert ep.grid[0] * ep.blocks["BLOCK_M"] >= 32 * 256 * 256 and ep.grid[1] * ep.blocks["BLOCK_N"] >= 128
    bwd = MCBA.plan_demod_bias_act_bwd(32, 256 * 256, 128, dev)
    assert bwd.grid[0] % 32 == 0 and bwd.grid[0] * bwd.blocks["BLOCK_M"] >= 32 * 256 * 256
    fl = FL.plan_fwd_launch(8, 181, 276, 276, 2, 2, 12, 12, torch.float32, dev)
    assert fl.grid[0] == 8 * 181 * fl.ty * fl.tx >= dev.sm_count and fl.precision == FL.FP32_INPUT_PRECISION
    assert FL.plan_fwd_launch(8, 181, 276, 276, 2, 2, 12, 12, torch.float16, dev).lowp
    grid, blocks, warps = MBD.plan_mbd(256, 100, 5, True, dev)
    assert grid == (8 * 100, 1) and blocks[2] == 8


# ------------------------------------------------------------------- the decisive preset, through the launchers


def _record(dev, dtype="float32"):
    from benchmarks import static_cases, static_report

    return static_report.record(dev, [dtype], static_cases.labels())


def _programs(launch, dev):
    from benchmarks import static_report

    return [j["grid"][0] * j["grid"][1] * j["grid"][2] for j in static_report.specialise(launch, dev.arch)]


@pytest.mark.parametrize("dev", DEVICES, ids=lambda d: d.name)
def test_the_decisive_launches_as_a_gpu_would_make_them(dev):
    launches = _record(dev)
    by_kernel = {}
    for launch in launches:
        name = launch["fn"].fn.__name__
        by_kernel.setdefault(name, []).append(launch)
        assert min(_programs(launch, dev)) >= 1
    r1 = [ln for ln in by_kernel["_gnp_fwd_kernel"] if ln["case"] == "r1_step/D256"]
    assert r1 and all(min(_programs(ln, dev)) >= dev.sm_count for ln in r1)  # [32, 3, 256, 256]: >= 1 wave
    # autotuned kernels are recorded with every config
    tuned = [ln for ln in launches if ln["configs"]]
    assert {ln["fn"].fn.__name__ for ln in tuned} == {"_upfirdn2d_kernel", "_modconv_bias_act_kernel"}
    # nothing in the decisive preset takes the interpreter's tiles
    for ln in by_kernel["_bias_act_kernel"]:
        assert ln["kwargs"]["BLOCK"] == 1024
    for ln in by_kernel["_sn_power_kernel"]:
        assert (ln["kwargs"]["BLOCK_H"], ln["kwargs"]["BLOCK_W"]) == (16, 256)


def test_sm90_and_sm80_differ_only_where_the_sm_count_decides():
    a, b = _record(_device.SM90), _record(_device.SM80)
    assert len(a) == len(b)
    differ = {x["fn"].fn.__name__ for x, y in zip(a, b) if x["kwargs"] != y["kwargs"] or
              _programs(x, _device.SM90) != _programs(y, _device.SM80)}
    assert differ <= {"_gnp_fwd_kernel", "_channel_dot_kernel"}, differ
    assert "_gnp_fwd_kernel" in differ


# --------------------------------------------------------------------------------- no device tests in launchers


# (file, function) that may look at a tensor's device: the description itself, Triton's current-device guard, the
# per-stream ticket counters and the pinned copy of small tables. None decides a launch.
ALLOWED = {("_device.py", "device_info"), ("_device.py", "_read_cuda"), ("_device.py", "interpreting"),
           ("_common.py", "device_guard"), ("_common.py", "_stream_key"), ("spectral_norm.py", "get")}


def test_no_launcher_reads_the_device_for_a_launch_decision():
    bad = []
    for fname in sorted(os.listdir(KERNELS_DIR)):
        if not fname.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(KERNELS_DIR, fname)).read())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            src = ast.unparse(fn)
            for needle in ("torch.cuda", "device.type", ".is_cuda", "on_gpu(", "interpreting()"):
                if needle in src and (fname, fn.name) not in ALLOWED:
                    bad.append(f"{fname}:{fn.name} uses {needle}")
    assert not bad, bad
