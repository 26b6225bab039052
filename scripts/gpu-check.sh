#!/usr/bin/env bash
# The GPU check, run from an unpacked bundle on a machine with a GPU and a CUDA PyTorch (no .NET and
# no network needed; the Omniglot zips travel beside the bundle). It
#   1. builds the native library against the active Python's PyTorch (./install.sh),
#   2. checks every binding op's values and gradients on the device against float64 on the CPU
#      (metarun check ops),
#   3. trains MAML and ProtoNet on Omniglot 5-way 1-shot for a few hundred iterations and evaluates
#      each on 600 test episodes,
#   4. benchmarks the MAML bar configuration (configs/omniglot/maml-5w1s.yaml) per task, and batched
#      once this build has the execution key,
# sampling GPU memory with nvidia-smi all along, and writes everything to one JSON file.
# With --device cpu and a small budget it runs anywhere (that is how it is tested without a GPU).
#
#   ./gpu-check.sh --data-root /path/with/omniglot [--device cuda] [--iterations 300] [--episodes 600]
#                  [--bench-iterations 20] [--out gpu-check.json] [--no-install]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

device=cuda iterations=300 episodes=600 bench_iterations=20 out="$PWD/gpu-check.json" install=1
data_root="${METARUN_DATA_ROOT:-$root/datasets}"
usage() {
  echo "usage: ./gpu-check.sh --data-root /path/with/omniglot [--device cuda] [--iterations 300] [--episodes 600] [--bench-iterations 20] [--out gpu-check.json] [--no-install]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --data-root) data_root="$2"; shift 2 ;;
    --iterations) iterations="$2"; shift 2 ;;
    --episodes) episodes="$2"; shift 2 ;;
    --bench-iterations) bench_iterations="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-install) install=0; shift ;;
    *) echo "gpu-check.sh: unknown argument $1" >&2; usage ;;
  esac
done
for n in "$iterations" "$episodes" "$bench_iterations"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "gpu-check.sh: --iterations, --episodes and --bench-iterations take positive integers (got '$n')" >&2; exit 2; }
done
[ -f "$data_root/omniglot/images_background.zip" ] && [ -f "$data_root/omniglot/images_evaluation.zip" ] ||
  { echo "gpu-check.sh: no Omniglot under $data_root (expected omniglot/images_background.zip and images_evaluation.zip); pass --data-root" >&2; exit 3; }
python="$(command -v python3 || command -v python)" || { echo "gpu-check.sh: python3 is needed to assemble the report" >&2; exit 10; }
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
work="${out%.json}.d"
rm -rf "$work" && mkdir -p "$work"
cd "$root"
log() { echo "gpu-check.sh: $*" >&2; }
now() { date +%s.%N; }

# ---- GPU memory: nvidia-smi sampled every 100 ms in the background, one file per phase ----
# It sees the whole device (other processes too), which is why the report names it "device used".
sampler=""
start_sampling() {
  [ "$device" = cpu ] && return 0
  command -v nvidia-smi >/dev/null || return 0
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$work/memory-$1.log" 2>/dev/null &
  sampler=$!
}
stop_sampling() {
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null; sampler=""; fi
}
trap stop_sampling EXIT

# ---- 1. the native library ----
if [ "$install" = 1 ]; then
  t=$(now)
  ./install.sh 2> "$work/install.log" || { cat "$work/install.log" >&2; exit 10; }
  "$python" -c "print($(now) - $t)" > "$work/install.seconds"
fi
./metarun --version > "$work/version.txt" 2>&1 || { cat "$work/version.txt" >&2; exit 10; }
if [ "$device" != cpu ] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$work/gpu.txt" 2>&1
fi
"$python" -c 'import torch; print(torch.__version__, torch.version.cuda)' > "$work/torch-python.txt" 2>/dev/null || true

# ---- 2. the ops ----
log "checking every binding op on $device"
./metarun check ops --device "$device" --json "$work/ops.json" > "$work/ops.txt" 2>&1
ops_rc=$?
cat "$work/ops.txt" >&2

# ---- 3. MAML and ProtoNet on Omniglot 5-way 1-shot ----
train_eval() { # name config
  local name=$1 config=$2 t rc
  log "training $name for $iterations iterations on $device, then evaluating $episodes episodes"
  start_sampling "$name"
  t=$(now)
  ./metarun train "$config" --data-root "$data_root" --set device="$device" --set algorithm.iterations="$iterations" \
    --set eval.interval=0 --set checkpoint.interval="$iterations" --out "$work/$name" > "$work/$name-train.log" 2>&1
  rc=$?
  "$python" -c "print($(now) - $t)" > "$work/$name-train.seconds"
  if [ $rc -eq 0 ]; then
    t=$(now)
    ./metarun eval --checkpoint "$work/$name" --episodes "$episodes" --data-root "$data_root" --out "$work/$name-eval.json" > "$work/$name-eval.log" 2>&1
    rc=$?
    "$python" -c "print($(now) - $t)" > "$work/$name-eval.seconds"
  fi
  stop_sampling
  echo $rc > "$work/$name.rc"
  [ $rc -eq 0 ] || tail -n 5 "$work/$name-train.log" "$work/$name-eval.log" 2>/dev/null >&2
}
train_eval maml configs/omniglot/maml-5w1s.yaml
train_eval protonet configs/omniglot/protonet-5w1s.yaml

# ---- 4. the MAML bar configuration, per task and batched ----
# bench times the configured execution mode and then the other one side by side (both in its JSON,
# under "modes"); per_task is named so that the per-task figures come first and the batched ones
# second. Peak GPU memory covers the whole bench: the per-task experiment stays alive while the
# batched one runs.
log "benchmarking MAML per task and batched on $device"
start_sampling bench
./metarun bench configs/omniglot/maml-5w1s.yaml --data-root "$data_root" --set device="$device" --set execution=per_task \
  --iterations "$bench_iterations" --warmup 3 --out "$work/bench.json" > "$work/bench.log" 2>&1
bench_rc=$?
stop_sampling
echo $bench_rc > "$work/bench.rc"
[ $bench_rc -eq 0 ] || tail -n 5 "$work/bench.log" >&2

# ---- the report ----
"$python" - "$work" "$out" "$device" "$iterations" "$episodes" "$bench_iterations" "$ops_rc" <<'PY'
import json, os, sys, socket, datetime
work, out, device, iterations, episodes, bench_iterations, ops_rc = sys.argv[1:8]
def text(name):
    p = os.path.join(work, name)
    return (open(p).read().strip() or None) if os.path.exists(p) else None
def js(name):
    p = os.path.join(work, name)
    try:
        return json.load(open(p)) if os.path.exists(p) else None
    except ValueError:
        return None
def num(name):
    t = text(name)
    return round(float(t), 2) if t else None
def peak(phase):
    t = text(f"memory-{phase}.log")
    values = [int(v) for v in (t or "").split() if v.isdigit()]
    return max(values) if values else None
def rc(name):
    t = text(f"{name}.rc")
    return int(t) if t else None
report = {
    "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "host": socket.gethostname(),
    "device": device,
    "gpu": text("gpu.txt"),
    "metarun_version": text("version.txt"),
    "python_torch": text("torch-python.txt"),
    "install_seconds": num("install.seconds"),
    "gpu_memory_note": "peak device memory used (MiB, all processes), nvidia-smi sampled every 100 ms; null on the CPU",
    "ops": {"exit_code": int(ops_rc), **(js("ops.json") or {"output": text("ops.txt")})},
    "budget": {"iterations": int(iterations), "eval_episodes": int(episodes), "bench_iterations": int(bench_iterations)},
}
for name in ("maml", "protonet"):
    report[name] = {
        "exit_code": rc(name),
        "train_seconds": num(f"{name}-train.seconds"),
        "eval_seconds": num(f"{name}-eval.seconds"),
        "eval": js(f"{name}-eval.json"),
        "peak_gpu_memory_mib": peak(name),
    }
# execution: auto, which is batched on a GPU and per task on the CPU (ProtoNet has no batched mode).
report["maml"]["execution"] = "batched" if device != "cpu" else "per_task"
report["protonet"]["execution"] = "per_task"
bench = js("bench.json")
modes = (bench or {}).get("modes", {})
report["bench"] = {
    "config": "configs/omniglot/maml-5w1s.yaml",
    "exit_code": rc("bench"),
    "per_task_median_seconds": modes.get("per_task", {}).get("median_seconds", (bench or {}).get("median_seconds")),
    "batched_median_seconds": modes.get("batched", {}).get("median_seconds"),
    "peak_gpu_memory_mib": peak("bench"),
    "result": bench,
}
ok = report["ops"]["exit_code"] == 0 and all(report[n]["exit_code"] == 0 for n in ("maml", "protonet")) \
    and report["bench"]["exit_code"] == 0
report["passed"] = ok
json.dump(report, open(out, "w"), indent=2)
print(out)
sys.exit(0 if ok else 1)
PY
