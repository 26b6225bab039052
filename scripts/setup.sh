#!/usr/bin/env bash
# Installs what MetaRun needs (as root) or says exactly what to install, then builds it
# incrementally: the C++ through CMake, the C# through dotnet (which drives CMake too).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# fonts-dejavu-core: the text of the plots (curves.png, metarun report). libdnnl-dev: oneDNN's
# headers, for the blocked convolution stack (native/src/convstack.cpp) on the library libtorch loads.
packages=(libtorch-dev libgloo-dev libdnnl-dev libopenblas0-pthread cmake g++ libpng-dev libjpeg62-turbo-dev fonts-dejavu-core)
# What the tests start for real: a browser that opens the report, a one-node Slurm cluster
# (scripts/slurm-local.sh), a terminal (tmux) to read what a person sees, Debian's Python with
# scikit-learn's digits, the onnx checker and torchvision (the features, export and ResNet
# parity tests). Only needed to build and run the tests, so only then installed; without root
# those tests skip and say why.
test_packages=(chromium slurm-wlm munge tmux python3-sklearn python3-onnx python3-torchvision)
target="${1:-src/MetaRun/MetaRun.csproj}"
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "$target" != src/MetaRun/MetaRun.csproj ] && [ "$(id -u)" = 0 ]; then
  for p in "${test_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
# The package manager's output (hundreds of dpkg lines) goes to a log; the terminal gets one
# line per step: what, how long, where the log is; on failure the log's last lines.
setup_log="${METARUN_SETUP_LOG:-/var/log/metarun-setup.log}"
step() {
  local what="$1"; shift
  local t0; t0=$(date +%s)
  [ -t 2 ] && printf 'metarun: %s ... ' "$what" >&2
  echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) $what: $*" >> "$setup_log"
  local rc=0
  "$@" >> "$setup_log" 2>&1 || rc=$?
  local took=$(( $(date +%s) - t0 ))
  if [ "$rc" = 0 ]; then
    if [ -t 2 ]; then echo "done in ${took} s (log: $setup_log)" >&2; else echo "metarun: $what: done in ${took} s (log: $setup_log)" >&2; fi
    return 0
  fi
  [ -t 2 ] && echo "failed" >&2
  echo "metarun: $what failed (exit $rc after ${took} s); the last lines of $setup_log:" >&2
  tail -n 15 "$setup_log" | sed 's/^/  /' >&2
  exit 10
}
# npm fetches the report's chart library (uPlot) at build time; a Node.js from elsewhere
# (NodeSource) brings its own npm, which Debian's npm package would conflict with.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    mkdir -p "$(dirname "$setup_log")"
    export DEBIAN_FRONTEND=noninteractive
    step "updating the package lists (apt-get update)" apt-get update
    step "installing ${missing[*]}" apt-get install -y "${missing[@]}"
  else
    echo "metarun: missing system packages. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 10
  fi
fi
command -v dotnet >/dev/null || { echo "metarun: the .NET 10 SDK (dotnet) is not on PATH; install it first" >&2; exit 10; }

cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# With an argument (a project or solution) builds that; by default the CLI alone.
echo "metarun: building $target" >&2
log=$(mktemp)
if ! dotnet build "$target" -c Release -nologo -v:q > "$log" 2>&1; then
  grep -E "error|Error" "$log" >&2 || cat "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
[ "$target" = src/MetaRun/MetaRun.csproj ] && touch "$root/src/MetaRun/bin/.built"
exit 0
