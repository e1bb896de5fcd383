#!/usr/bin/env bash
# The one prepared script for a GPU machine (H100 / H200; no network; torch + triton preinstalled).
#
#   bash benchmarks/gpu.sh [OUT_DIR]        # OUT_DIR defaults to $OUT, else ./gpu_out
#
# Steps, each guarded by `timeout` inside one total budget (default 450 s, under 8 minutes; at least
# ~200 s of it kept for the benchmarks: tests get at most 75 s per run):
#   1. environment (nvidia-smi, versions)                                   -> gpu.log
#   2. pip install --no-deps --no-build-isolation -e .  (C++/CUDA extension built if it can be;
#      retried without the extension if that fails or runs out of time); then the backends that can
#      run (a JIT build of the extension happens here, or the extension is switched off)  -> gpu.log
#   3. the GPU tests:             python -m pytest tests -m gpu -q           -> gpu.log
#   4. the rest of the suite:     python -m pytest tests -m "not gpu and not slow" -q   -> gpu.log
#      (3 + 4 = the full suite without the slow tests, which CI runs: e.g. the compile-for-sm_90 check,
#      redundant where the kernels run for real)
#   5. python -m benchmarks --preset stylegan2 (its own --budget-s; JSON written after every case)
#   6. python -m benchmarks --preset biggan
#   7. python -m benchmarks.report on the two JSON files                     -> report.md
# Output folder: gpu.log, bench-stylegan2.{json,png}, bench-biggan.{json,png}, report.md (6 files).
# A step that fails or times out is logged and the script goes on; the exit status is 0 unless
# no benchmark JSON was written.
set -u

OUT_DIR="${1:-${OUT:-gpu_out}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
cd "$(dirname "$0")/.."
LOG="$OUT_DIR/gpu.log"
: > "$LOG"
TOTAL=${GAN_FAST_GPU_TOTAL_S:-450}   # every step (kill grace included) and the report fit in this
PY=${PYTHON:-python3}
BENCH_ARGS=${GAN_FAST_BENCH_ARGS:-}   # extra runner flags, e.g. "--quick" for a dry run
export PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-16}
unset GAN_FAST_IMPL TRITON_INTERPRET
T0=$SECONDS

log() { echo "[gpu.sh $((SECONDS - T0))s] $*" | tee -a "$LOG"; }

# step NAME CAP_S RESERVE_S CMD... : runs CMD with timeout min(CAP, time left - RESERVE for later steps)
step() {
    local name=$1 cap=$2 reserve=$3
    shift 3
    local left=$((TOTAL - (SECONDS - T0) - reserve - 5))   # 5 s: timeout's kill grace
    local t=$((cap < left ? cap : left))
    if ((t < 15)); then
        log "$name: SKIPPED (only ${t}s left of the ${TOTAL}s budget)"
        return 124
    fi
    log "$name: start (timeout ${t}s): $*"
    local s=$SECONDS
    timeout -k 5 "$t" "$@" >>"$LOG" 2>&1
    local rc=$?
    log "$name: rc=$rc in $((SECONDS - s))s$([ $rc -eq 124 ] && echo ' (TIMED OUT)')"
    return $rc
}

log "out: $OUT_DIR  budget: ${TOTAL}s  python: $(command -v $PY)"
{
    timeout 10 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
    timeout 30 $PY -c "import sys, torch, triton; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, 'gpu', torch.cuda.get_device_name() if torch.cuda.is_available() else None)" 2>&1
    echo "cpus: $(nproc)"
} >>"$LOG" 2>&1

# 2. install (the extension build may be slow: fall back to the pure-Python install)
if ! step install 150 320 $PY -m pip install --no-deps --no-build-isolation -e .; then
    GAN_FAST_BUILD_EXT=0 step install-without-extension 60 300 \
        $PY -m pip install --no-deps --no-build-isolation -e . || log "install failed; using the checkout in place"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
# which backends can run (this may JIT-build the extension once; later steps reuse the build)
if ! step backends 120 260 $PY -c "import gan_fast, gan_fast.backend as b; print('gan_fast', gan_fast.__version__, b.available_backends('cuda'))"; then
    # A JIT build of the extension that does not finish here would restart inside every later step.
    export GAN_FAST_EXT=0
    log "backends: the C++/CUDA extension is switched off for the rest of the run (GAN_FAST_EXT=0)"
fi

# 3-4. tests
step tests-gpu 75 245 $PY -m pytest tests -m gpu -q -p no:cacheprovider
step tests-rest 75 200 $PY -m pytest tests -m "not gpu and not slow" -q -p no:cacheprovider

# 5-6. benchmarks: the runner stops starting measurements at --budget-s and writes its JSON;
# `timeout` (a little later) is the backstop.
left=$((TOTAL - (SECONDS - T0) - 60))
if ((left > 40)); then
    step bench-stylegan2 $((left)) 60 $PY -m benchmarks --preset stylegan2 --out "$OUT_DIR" --budget-s $((left - 30)) $BENCH_ARGS
else
    log "bench-stylegan2: SKIPPED (only ${left}s left)"
fi
left=$((TOTAL - (SECONDS - T0) - 25))
if ((left > 30)); then
    step bench-biggan $((left)) 25 $PY -m benchmarks --preset biggan --out "$OUT_DIR" --budget-s $((left - 20)) $BENCH_ARGS
else
    log "bench-biggan: SKIPPED (only ${left}s left)"
fi

# 7. the README table from this run's JSON
shopt -s nullglob
jsons=("$OUT_DIR"/bench-*.json)
if ((${#jsons[@]})); then
    timeout 20 $PY -m benchmarks.report "${jsons[@]}" >"$OUT_DIR/report.md" 2>>"$LOG" || log "report failed"
    log "done in $((SECONDS - T0))s: $(cd "$OUT_DIR" && ls | tr '\n' ' ')"
    exit 0
fi
log "done in $((SECONDS - T0))s: no benchmark JSON was written"
exit 1
