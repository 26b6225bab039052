#!/usr/bin/env bash
# Runs the whole test suite: installs and builds as needed, then every xunit test.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh" MetaRun.sln || exit $?
cd "$root"
log=$(mktemp)
dotnet test MetaRun.sln -c Release --no-build -nologo "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# One plain summary line that any CI can read.
awk '/Failed:.*Passed:/ { gsub(/[^0-9,:A-Za-z ]/, ""); for (i = 1; i <= NF; i++) { if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
rm -f "$log"
exit "$rc"
