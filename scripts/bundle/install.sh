#!/usr/bin/env bash
# Builds the bundle's native library (native/) against the libtorch found on this machine and puts
# it beside the CLI in bin/. Needs cmake, a C++17 compiler and the libpng/libjpeg headers; needs no
# root and no .NET SDK (the CLI in bin/ is self-contained). Which libtorch, first found wins:
#   1. METARUN_LIBTORCH=/path (an unzipped libtorch, or any prefix holding TorchConfig.cmake)
#   2. the active Python's PyTorch (torch.utils.cmake_prefix_path; a venv or conda env first on PATH),
#      when it ships CMake files (Debian's python3-torch and some conda builds do not: passed over, said so)
#   3. Debian's libtorch-dev
# Every mismatch stops with one message saying what to do, and exit code 10 (setup).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

fail() {
  echo "install.sh: $1" >&2
  shift
  for line in "$@"; do echo "  $line" >&2; done
  exit 10
}
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# ---- tools ----
command -v cmake >/dev/null ||
  fail "cmake is not installed." \
    "With root:    sudo apt-get install cmake" \
    "Without root: python3 -m pip install --user cmake   (or: conda install cmake)"
cmake_version=$(cmake --version | sed -n 's/^cmake version \([0-9.]*\).*/\1/p')
version_ge "$cmake_version" 3.18 ||
  fail "cmake $cmake_version is too old (3.18 or newer is needed)." \
    "Without root: python3 -m pip install --user cmake, then put ~/.local/bin first on PATH"

cxx="${CXX:-$(command -v c++ || command -v g++ || command -v clang++ || true)}"
[ -n "$cxx" ] && command -v "$cxx" >/dev/null ||
  fail "no C++ compiler found." \
    "With root: sudo apt-get install g++   (conda: conda install -c conda-forge gxx_linux-64, then CXX=x86_64-conda-linux-gnu-g++ ./install.sh)"
# libtorch's headers are C++17 and need GCC 9 or Clang 10 at least.
if "$cxx" --version | head -n1 | grep -qi clang; then
  cxx_name=clang; cxx_min=10
else
  cxx_name=gcc; cxx_min=9
fi
cxx_version=$("$cxx" -dumpversion)
version_ge "$cxx_version" "$cxx_min" ||
  fail "the C++ compiler $cxx ($cxx_name $cxx_version) is too old for libtorch: $cxx_name $cxx_min or newer is needed." \
    "Point CXX at a newer one: CXX=/usr/bin/g++-12 ./install.sh   (or: conda install -c conda-forge gxx_linux-64)"

# ---- libtorch ----
debian_torch=/usr/lib/x86_64-linux-gnu/cmake
python="$(command -v python3 || command -v python || true)"
if [ -n "${METARUN_LIBTORCH:-}" ]; then
  torch_prefix="$METARUN_LIBTORCH"
  torch_from="METARUN_LIBTORCH=$METARUN_LIBTORCH"
  [ -n "$(find "$torch_prefix" -maxdepth 4 -name TorchConfig.cmake -print -quit 2>/dev/null)" ] ||
    fail "METARUN_LIBTORCH=$METARUN_LIBTORCH holds no libtorch (no TorchConfig.cmake below it)." \
      "Point it at an unzipped libtorch (the folder with include/, lib/ and share/cmake/Torch)."
elif [ -n "$python" ] && torch_prefix=$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null) &&
     [ -n "$(find "$torch_prefix" -maxdepth 4 -name TorchConfig.cmake -print -quit 2>/dev/null)" ]; then
  torch_from="the PyTorch of $python ($("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null))"
elif [ -f "$debian_torch/Torch/TorchConfig.cmake" ]; then
  # A PyTorch without CMake files (Debian's python3-torch, some conda builds) cannot be built
  # against; the next candidate is, and the user is told why the Python one was passed over.
  [ -n "$python" ] && "$python" -c 'import torch' 2>/dev/null &&
    echo "install.sh: the PyTorch of $python has no CMake files (TorchConfig.cmake); using Debian's libtorch-dev instead" >&2
  torch_prefix="$debian_torch"
  torch_from="Debian's libtorch-dev"
else
  fail "no libtorch found." \
    "Either activate the Python environment that has PyTorch (python3 -c 'import torch' must work)," \
    "or unzip a libtorch from pytorch.org and run: METARUN_LIBTORCH=/path/to/libtorch ./install.sh," \
    "or (Debian, root) sudo apt-get install libtorch-dev."
fi
echo "install.sh: building the native library against $torch_from" >&2

# ---- configure ----
# A conda environment's prefix goes on the search path too: that is where conda puts libpng/libjpeg.
prefix_path="$torch_prefix${CONDA_PREFIX:+;$CONDA_PREFIX}"
build="$root/native/build"
log="$root/native/install.log"
# CMake caches what it found (libtorch's folder above all); another libtorch or compiler than last
# time needs a fresh build folder, or the old libtorch would silently be used again.
key="$prefix_path|$cxx|${PNG_ROOT:-}|${JPEG_ROOT:-}|${ZLIB_ROOT:-}"
if [ -f "$build/.metarun-install-key" ] && [ "$(cat "$build/.metarun-install-key")" != "$key" ]; then
  rm -rf "$build"
fi
mkdir -p "$build"
echo "$key" > "$build/.metarun-install-key"
if ! cmake -S "$root/native" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
     -DMETARUN_TORCH_PLAIN=ON -DCMAKE_PREFIX_PATH="$prefix_path" > "$log" 2>&1; then
  missing=()
  grep -q "Could NOT find ZLIB" "$log" && missing+=(zlib)
  grep -q "Could NOT find PNG" "$log" && missing+=(libpng)
  grep -q "Could NOT find JPEG" "$log" && missing+=(libjpeg)
  if [ ${#missing[@]} -gt 0 ]; then
    fail "the development files (headers) of ${missing[*]} are missing; the native library decodes PNG and JPEG images with them." \
      "With root (Debian/Ubuntu): sudo apt-get install libpng-dev libjpeg-dev zlib1g-dev   (RHEL/Fedora: sudo dnf install libpng-devel libjpeg-turbo-devel zlib-devel)" \
      "Without root, in the active conda environment: conda install -c conda-forge libpng libjpeg-turbo zlib   (install.sh looks in \$CONDA_PREFIX)" \
      "Or point CMake at a prefix holding include/ and lib/ for each: PNG_ROOT=/prefix JPEG_ROOT=/prefix ZLIB_ROOT=/prefix ./install.sh" \
      "(CMake's output: $log)"
  fi
  grep -q "no libtorch found" "$log" &&
    fail "no libtorch under $torch_prefix (from $torch_from)." \
      "Point METARUN_LIBTORCH at an unzipped libtorch, or activate a Python environment with PyTorch."
  tail -n 20 "$log" >&2
  fail "CMake could not configure the native library (its output above and in $log)."
fi

# ---- build ----
jobs=$(nproc 2>/dev/null || echo 2)
if ! cmake --build "$build" -j "$jobs" >> "$log" 2>&1; then
  grep -E "error|Error" "$log" | head -n 20 >&2 || tail -n 20 "$log" >&2
  fail "the native library did not compile (the compiler's output above and in $log)." \
    "A compiler too old or a libtorch built with another C++ ABI are the usual causes: CXX=/path/to/g++-12 ./install.sh"
fi
cp "$build/libmetarun_native.so" "$root/bin/libmetarun_native.so"

# ---- check that it loads and say what it found ----
if ! facts=$("$root/metarun" --version 2>&1); then
  rm -f "$root/bin/libmetarun_native.so"
  echo "$facts" >&2
  fail "the native library was built but does not load (the message above)." \
    "If a library is missing, the libtorch at $torch_prefix is incomplete; if a symbol is missing, it was built with another compiler ABI."
fi
echo "$facts" | sed 's/^/install.sh: /' >&2
if grep -q "METARUN: CPU-only libtorch" "$log"; then
  echo "install.sh: this libtorch is CPU-only, so device: cuda will be refused; for a GPU, activate a Python with a CUDA PyTorch (or set METARUN_LIBTORCH to a CUDA libtorch) and run ./install.sh again." >&2
fi
echo "install.sh: done; try ./metarun train configs/sinusoid/maml.yaml" >&2
