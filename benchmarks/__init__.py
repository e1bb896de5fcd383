"""gan_fast's benchmark suite: eager ``ref`` vs every fast backend vs ``torch.compile(ref)``, in one process on one
device, with the max error of each against a float64 ``ref`` run and the modelled memory traffic of each path.

Run::

    python -m benchmarks --preset ci --out DIR          # tiny shapes, < 3 min on 2 CPU cores
    python -m benchmarks --preset ci --only overhead    # a selection: bench-ci-only-overhead.json, never README's
    python -m benchmarks --preset stylegan2 --out DIR   # config-F shapes (GPU)
    python -m benchmarks --preset biggan --out DIR      # spectral norm of a BigGAN-128 D
    python -m benchmarks.report [DIR|FILES]             # README results table (complete runs only)
    python -m pytest benchmarks                         # the same cases under pytest-benchmark
    bash benchmarks/gpu.sh OUT_DIR                      # the prepared GPU-machine script

Modules mirror what they measure by name: ``bench_<op>.py`` holds the cases whose ``op`` is ``<op>``, one per
public op (``bench_bias_act``, ``bench_upfirdn2d``, ``bench_modulated_conv2d``, ``bench_modulated_conv2d_bias_act``,
``bench_filtered_lrelu``, ``bench_minibatch_discrimination``, ``bench_power_iteration``,
``bench_spectral_normalize``, ``bench_gradient_norm_penalty``) and per composite step (``bench_r1_step``,
``bench_path_length_step``, ``bench_alias_free_layer``, ``bench_stylegan2_iteration``, ``bench_overhead``);
``harness`` (rows, passes, timing, error check, records), ``traffic`` (the bytes model), ``nets`` (config-F D / G
as functions of ``gan_fast.ops``), ``presets``, ``report``. Backends are named through the library's API:
``gan_fast.backends.<op>.SPEC`` says which backends an op has, ``gan_fast.backend.available_backends`` which can
run here, and composite steps force one with ``gan_fast.config.use_backend`` (never an environment variable).

**Order of a run.** The library phase first: for every case (in priority order) its eager, fast-backend and
extra-baseline rows; then the compile phase: every case's ``torch.compile`` rows, each timed interleaved with
the case's eager row again. A run cut short by its time budget (``--budget-s``; 165 s for ``ci``) has measured
every op's fast path before any compile baseline. The last line printed counts the rows run / skipped / errored
(summing to the total) and why.

**Output**, in ``--out``: ``<name>.json``, ``<name>.png`` (speedups with their spread; skipped with a message
without matplotlib) and the table on stdout, where ``<name>`` is ``bench-<preset>[-only-<regex>][-<tag>]``
(``naming.run_name``); a run that did not complete (a row skipped by the budget, interrupted, or not one library
row measured) writes ``<name>-partial.json`` instead (also while it runs), so it never replaces a complete run, and ``report`` leaves
partial runs and ``--only`` selections out of README's results. Exit status: 0 when the library's rows were
measured (complete or not: see the summary), 2 when no case matches, 3 when interrupted, 4 when not one of the
library's rows (eager or a fast backend) could be measured.

The JSON is ``{"meta": {...}, "records": [...]}`` with one record per (case, row, pass):

====================  =====================================================================
op, case, shape       the op (or step) and its case; shape in words
preset, dtype         e.g. ``stylegan2``, ``float16``
device, device_type   e.g. ``NVIDIA H100 80GB HBM3`` / ``cuda``; CPU devices read ``CPU ...``
torch, triton         versions
backend               ``eager`` (ref), ``compile`` (torch.compile of ref), ``triton``, ``cpp``, or an extra
                      baseline (``torch_sn``: PyTorch's spectral_norm; ``chain``: a hand-written chain ...)
variant               e.g. ``fused`` / ``unfused`` for modulated_conv2d's fused_modconv
pass                  ``fwd`` (forward with autograd recording), ``fwdbwd``, ``dbl`` (the double-backward step
                      of R1 / path length), ``iter`` (training iteration)
status                ``ok``, ``error`` (``error`` holds the message), ``skipped`` / ``interrupted`` (``reason``)
library               true for eager and fast-backend rows (what the library is measured on)
explicit              true for a backend the op runs only when asked for on this device
seq                   the order in which the run measured the row (its first call)
median_ms, iqr_ms     per call; CUDA events on GPU, perf_counter on CPU; q1_ms, q3_ms the quartiles
spread, noisy         iqr / median; noisy when > ``harness.NOISY_SPREAD`` (flagged in the table and chart)
speedup_vs_eager      fastest eager variant's median / this median (a compile row: the eager timed with it)
speedup_vs_compile    this row's speedup_vs_eager / the best compile row's (None when compile was not timed)
vs_chain              a hand-written ``chain`` row's median / this median (overhead cases)
peak_mem_mb           peak CUDA memory of one call above what was allocated before it (None on CPU)
max_abs_err           max |result - float64 ref| over every result of the pass (outputs, gradients)
ref_max_abs, ref_rms  the scale of that error (max and RMS of the float64 results)
first_call_s          first call (compilation included), seconds
bytes                 modelled global-memory bytes of this row's path for the pass (``traffic``)
bytes_fused           ... of the case's fused path; bytes_eager of the ref chain; byte_ratio = eager / fused
gbps, pct_peak        bytes / median, and its share of the device's peak bandwidth (known GPUs only)
images_per_s          throughput (steps with a batch)
note, reason          what the case measures exactly; why a row was skipped
====================  =====================================================================

The meta holds the run's settings, ``complete``, ``summary`` (the counts), ``not_measured`` (rows left out by
design: a backend that cannot run on this device, compile disabled or not timed for a case) and ``backends``.
CPU timings are noisy (shared cores): quote the ratios of one run, never absolute CPU times.
"""

__all__ = ["OP_MODULES"]

# Run order within a priority (cases carry priorities; a stable sort keeps this order among equals).
OP_MODULES = ("bench_bias_act", "bench_upfirdn2d", "bench_modulated_conv2d", "bench_modulated_conv2d_bias_act",
              "bench_filtered_lrelu", "bench_alias_free_layer", "bench_minibatch_discrimination",
              "bench_spectral_normalize", "bench_power_iteration", "bench_gradient_norm_penalty", "bench_r1_step",
              "bench_path_length_step", "bench_stylegan2_iteration", "bench_overhead")
