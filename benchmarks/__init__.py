"""gan_fast's benchmark suite: eager ``ref`` vs ``torch.compile(ref)`` vs every fast backend,
in one process on one device, with the max error of each against a float64 ``ref`` run.

Run::

    python -m benchmarks --preset ci --out DIR          # tiny shapes, < 3 min on 2 CPU cores
    python -m benchmarks --preset stylegan2 --out DIR   # config-F shapes (GPU)
    python -m benchmarks --preset biggan --out DIR      # spectral norm of a BigGAN-128 D
    python -m benchmarks.report                         # README results table from benchmarks/results/
    python -m pytest benchmarks                         # the same cases under pytest-benchmark
    bash benchmarks/gpu.sh OUT_DIR                      # the prepared GPU-machine script

Modules: one per op with its cases (``bench_bias_act``, ``bench_upfirdn2d``,
``bench_modulated_conv2d``, ``bench_modulated_conv2d_bias_act`` (the one-kernel synthesis
layer vs the composed one), ``bench_spectral_norm``, ``bench_gradient_penalty`` (with
the R1 step), ``bench_path_length``, ``bench_e2e``), ``harness`` (timing, passes,
error check), ``nets`` (config-F D / G as functions of ``gan_fast.ops``), ``presets``.

Output of the runner, in ``--out``: ``bench-<preset>.json``, ``bench-<preset>.png``
(speedups; skipped with a message without matplotlib) and the table on stdout.
The JSON is ``{"meta": {...}, "records": [...]}`` with one record per measurement:

====================  =====================================================================
op, case, shape       the op (or step) and its case; shape in words
preset, dtype         e.g. ``stylegan2``, ``float16``
device, device_type   e.g. ``NVIDIA H100 80GB HBM3`` / ``cuda``; CPU devices read ``CPU ...``
torch, triton         versions
backend               ``eager`` (ref), ``compile`` (torch.compile of ref), ``triton``, ``cpp``,
                      or an extra baseline (``torch_sn``: PyTorch's spectral_norm)
variant               e.g. ``fused`` / ``unfused`` for modulated_conv2d's fused_modconv
pass                  ``fwd`` (forward with autograd recording), ``fwdbwd``, ``dbl`` (the
                      double-backward step of R1 / path length), ``iter`` (training iteration)
status                ``ok``, ``error`` (``error`` holds the message), ``unavailable``, ``skipped``
median_ms, iqr_ms     per call; CUDA events on GPU, perf_counter on CPU
speedup_vs_eager      fastest eager variant's median / this median (same run, same pass)
speedup_vs_compile    likewise vs the fastest compile variant (None when compile failed)
peak_mem_mb           peak CUDA memory of one call above what was allocated before it (None on CPU)
max_abs_err           max |result - float64 ref| over every result of the pass (outputs, gradients)
ref_max_abs           max |float64 ref result|, the scale of that error
first_call_s          first call (compilation included), seconds
gbps, images_per_s    achieved bandwidth (bias_act) / throughput (steps with a batch), when known
note                  what the case measures exactly (e.g. error measured at a smaller batch)
reason                why a measurement was skipped (``error`` holds an error's message)
====================  =====================================================================

CPU timings are noisy (shared cores): quote the ratios of one run, never absolute CPU times.
"""

__all__ = ["OP_MODULES"]

OP_MODULES = ("bench_bias_act", "bench_upfirdn2d", "bench_modulated_conv2d", "bench_modulated_conv2d_bias_act",
              "bench_filtered_lrelu", "bench_alias_free", "bench_minibatch_discrimination",
              "bench_spectral_norm", "bench_gradient_penalty", "bench_path_length", "bench_e2e", "bench_overhead")
