#!/usr/bin/env bash
# Makes the portable bundle dist/metarun-VERSION-linux-x64.tar.gz: the CLI published
# self-contained (no .NET needed on the target), the native sources with their CMake build,
# configs/, the bundle's launcher and install.sh (which builds the native library on the target
# against the libtorch it finds), gpu-check.sh and docs/gpu.md. Prints the archive's path.
# Needs the .NET SDK (here, not on the target). The publish step is skipped when its output is
# newer than every C# source and this script, so repeated packaging (the bundle test) costs seconds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
command -v dotnet >/dev/null || { echo "package.sh: the .NET 10 SDK (dotnet) is not on PATH; install it first" >&2; exit 10; }

version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props)
name="metarun-$version-linux-x64"
dist="$root/dist"
publish="$dist/.publish/linux-x64"
stamp="$dist/.publish/.stamp"

if [ ! -f "$stamp" ] || [ -n "$(find src Directory.Build.props global.json scripts/package.sh \( -name bin -o -name obj \) -prune -o -newer "$stamp" -type f -print -quit)" ]; then
  echo "package.sh: publishing the CLI for linux-x64 (self-contained)" >&2
  rm -rf "$publish" "$stamp"
  log=$(mktemp)
  # Trimming: partial mode trims only assemblies that declare themselves trimmable (the framework's),
  # and keeps MetaRun's and the libraries' whole. That is what makes it safe here: the config binder
  # reflects over RunConfig's properties and YamlDotNet builds objects by reflection, which full
  # trimming would cut (its analysis flags ConfigLoader). Its warnings are about those kept
  # assemblies, hence suppressed; the bundle test trains and evaluates through the trimmed CLI.
  # System.Text.Json turns reflection off in trimmed apps; bench writes its JSON through it, so it
  # is turned back on (the bundle test runs bench).
  # The artifacts path keeps publish's restore and obj/ apart from the development build's.
  # METARUN_SKIP_NATIVE: the native library is built on the target by install.sh, not here.
  if ! METARUN_SKIP_NATIVE=1 dotnet publish src/MetaRun/MetaRun.csproj -c Release -r linux-x64 --self-contained \
       -p:PublishTrimmed=true -p:TrimMode=partial -p:SuppressTrimAnalysisWarnings=true -p:SatelliteResourceLanguages=en \
       -p:JsonSerializerIsReflectionEnabledByDefault=true \
       --artifacts-path "$dist/.artifacts" -o "$publish" -nologo -v:q > "$log" 2>&1; then
    grep -E "error|Error" "$log" >&2 || cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  # The development build's native library (linked against this machine's libtorch) must not travel.
  rm -f "$publish/libmetarun_native.so"
  touch "$stamp"
fi

stage="$dist/.stage/$name"
rm -rf "$dist/.stage"
mkdir -p "$stage/native" "$stage/docs"
cp -a "$publish" "$stage/bin"
cp -a native/CMakeLists.txt native/src "$stage/native/"
mkdir -p "$stage/native/tools" && cp -a native/tools/. "$stage/native/tools/"
cp -a configs "$stage/configs"
cp -a docs/gpu.md "$stage/docs/gpu.md"
cp -a scripts/bundle/metarun scripts/bundle/install.sh scripts/gpu-check.sh "$stage/"
echo "$version" > "$stage/VERSION"
tar -C "$dist/.stage" -czf "$dist/$name.tar.gz" "$name"
rm -rf "$dist/.stage"
echo "$dist/$name.tar.gz"
