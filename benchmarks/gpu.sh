#!/usr/bin/env bash
# The one prepared script for a GPU machine (H100 / H200; no network; torch + triton preinstalled):
#
#   bash benchmarks/gpu.sh [OUT_DIR] [--total-s 360]     # OUT_DIR defaults to $OUT, else ./gpu_out
#
# preflight (stops at once, status 2, without CUDA) -> install -> self-test -> decisive benchmarks -> sharded
# tests (the extension builds meanwhile) -> cpp rows -> compile rows -> report.md; within one wall-clock budget.
# The steps, their budgets and outputs are documented in benchmarks/gpu.py.
set -u
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m benchmarks.gpu "$@"
