#!/usr/bin/env bash
# Creates .venv (once) and installs CODITECT into it with the given extras.
# Re-installs only when pyproject.toml or the extras change. Usage: source scripts/bootstrap.sh EXTRAS
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="${1:-local,wasm}"
VENV="${CODITECT_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "CODITECT needs Python 3.11 or newer (found: $("$PY" --version 2>&1))" >&2
  exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV ..." >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
# llama.cpp (the [local] extra) is built from source once per machine into a wheel of our own,
# keyed by its build flags. On x86_64 the build targets AVX2 (plus AVX-512 where the CPU has it)
# instead of -march=native: a native build on a CPU that reports AMX enables ggml's AMX kernels,
# which crash with a segmentation fault on the first decode on such machines (seen on Sapphire
# Rapids VMs). Set CMAKE_ARGS yourself to override.
LLAMA_VERSION="0.3.36"
if [[ ",$EXTRAS," == *",local,"* ]]; then
  if [ -z "${CMAKE_ARGS:-}" ] && [ "$(uname -m)" = "x86_64" ]; then
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
    CMAKE_ARGS="$CMAKE_ARGS -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    if grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo; then
      CMAKE_ARGS="$CMAKE_ARGS -DGGML_AVX512=ON"
    fi
  fi
  LLAMA_KEY="$(printf '%s|%s|%s' "$LLAMA_VERSION" "${CMAKE_ARGS:-}" "$("$PY" -c 'import sys; print(sys.version_info[:2])')" | sha256sum | cut -c1-16)"
  LLAMA_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/coditect/wheels/llama-$LLAMA_KEY"
  LLAMA_STAMP="$VENV/.coditect-llama"
  if [ ! -f "$LLAMA_STAMP" ] || [ "$(cat "$LLAMA_STAMP")" != "$LLAMA_KEY" ]; then
    if ! ls "$LLAMA_DIR"/llama_cpp_python-*.whl >/dev/null 2>&1; then
      echo "building llama.cpp (llama-cpp-python $LLAMA_VERSION, about 3 minutes, once per machine) ..." >&2
      mkdir -p "$LLAMA_DIR.tmp"
      CMAKE_ARGS="${CMAKE_ARGS:-}" "$VENV/bin/python" -m pip wheel --quiet --no-cache-dir --no-deps \
        -w "$LLAMA_DIR.tmp" "llama-cpp-python==$LLAMA_VERSION"
      rm -rf "$LLAMA_DIR" && mv "$LLAMA_DIR.tmp" "$LLAMA_DIR"
    fi
    "$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps "$LLAMA_DIR"/llama_cpp_python-*.whl
    echo "$LLAMA_KEY" > "$LLAMA_STAMP"
  fi
fi
STAMP="$VENV/.coditect-installed"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)-$EXTRAS"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "installing coditect[$EXTRAS] into $VENV (the first time builds llama.cpp: about 3 minutes) ..." >&2
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$EXTRAS]"
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
