#!/usr/bin/env bash
# Compile-checks every csrc/*.cu with nvcc against the installed torch's headers
# (compile only, no link, no GPU needed), so CUDA syntax and template errors are
# caught on machines without a GPU. Skips cleanly (exit 0) when nvcc is absent.
#
#   csrc/check_cuda.sh            # uses `python` from PATH (activate the venv first)
#   PYTHON=.venv/bin/python NVCC=/usr/local/cuda/bin/nvcc CUDA_ARCH=sm_90 csrc/check_cuda.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -n "${NVCC+set}" ]]; then
  nvcc="$NVCC"
else
  nvcc="$(command -v nvcc || true)"
  if [[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]]; then nvcc=/usr/local/cuda/bin/nvcc; fi
fi
if [[ -n "$nvcc" && "$nvcc" != */* ]]; then nvcc="$(command -v "$nvcc" || echo "$nvcc")"; fi
if [[ -z "$nvcc" || ! -x "$nvcc" ]]; then
  echo "check_cuda.sh: SKIP: nvcc not found${nvcc:+ at $nvcc} (set NVCC or install the CUDA toolkit)"
  exit 0
fi
python="${PYTHON:-python}"
torch_inc="$("$python" -c 'import torch.utils.cpp_extension as c; print(" ".join(c.include_paths()))' 2>/dev/null | tail -1)"
py_inc="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
arch="${CUDA_ARCH:-sm_80}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
shopt -s nullglob
files=("$here"/*.cu)
if [[ ${#files[@]} -eq 0 ]]; then echo "check_cuda.sh: no .cu files in $here"; exit 0; fi
incs=()
for d in $torch_inc "$py_inc" "$here"; do incs+=("-I$d"); done
# A CPU-only torch wheel ships the c10/cuda headers without their generated
# cuda_cmake_macros.h; c10 has a switch for building without it.
extra=()
found=0
for d in $torch_inc; do [[ -f "$d/c10/cuda/impl/cuda_cmake_macros.h" ]] && found=1; done
if [[ $found -eq 0 ]]; then extra+=("-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE"); fi
"$nvcc" --version | tail -1
# Compile the files in parallel; print a file's log only when it fails.
for f in "${files[@]}"; do
  name="$(basename "$f")"
  # The flags torch.utils.cpp_extension passes to nvcc, plus the extension's own.
  ( if "$nvcc" -c "$f" -o "$out/$name.o" "${incs[@]}" -std=c++20 -O1 -arch="$arch" \
      -DGAN_FAST_WITH_CUDA -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ \
      -D__CUDA_NO_BFLOAT16_CONVERSIONS__ -D__CUDA_NO_HALF2_OPERATORS__ --expt-relaxed-constexpr \
      --use_fast_math -Xcompiler -fPIC -DTORCH_EXTENSION_NAME=_C -DTORCH_API_INCLUDE_EXTENSION_H \
      ${extra[@]+"${extra[@]}"} >"$out/$name.log" 2>&1; then echo 0; else echo 1; fi >"$out/$name.rc" ) &
done
wait
status=0
for f in "${files[@]}"; do
  name="$(basename "$f")"
  if [[ "$(cat "$out/$name.rc")" == 0 ]]; then
    echo "check_cuda.sh: OK   $name"
  else
    cat "$out/$name.log"
    echo "check_cuda.sh: FAIL $name"
    status=1
  fi
done
exit $status
