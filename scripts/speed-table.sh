#!/usr/bin/env bash
# Seconds per meta-iteration per task and batched, for the rows of docs/performance.md's "Per task
# and batched" table: MAML on the bar configuration (configs/omniglot/maml-5w1s.yaml), FOMAML,
# 5-way 5-shot, 20-way 1-shot, ANIL, Meta-SGD, MAML++ with 5 steps and ProtoNet (per task only).
# Each row is benched twice, once with each mode timed first (bench times both, one after the
# other), and each mode's figure is the mean of its two medians; with --baseline, a second build's
# CLI is benched the same way, alternated with this one, for a before/after column.
#
#   scripts/speed-table.sh --data-root ../shared/datasets [--iterations 20] [--warmup 3]
#                          [--rows "maml fomaml 5w5s 20w1s anil metasgd mamlpp protonet"]
#                          [--baseline OTHER_CHECKOUT/metarun] [--out DIR]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

data_root="" iterations=20 warmup=3 rows="maml fomaml 5w5s 20w1s anil metasgd mamlpp protonet" baseline="" out="${TMPDIR:-/tmp}/metarun-speed-table"
usage() {
  echo "usage: scripts/speed-table.sh --data-root DIR [--iterations 20] [--warmup 3] [--rows \"maml fomaml ...\"] [--baseline OTHER/metarun] [--out DIR]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --data-root) data_root="$2"; shift 2 ;;
    --iterations) iterations="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --rows) rows="$2"; shift 2 ;;
    --baseline) baseline="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "speed-table.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$data_root" ] || usage
mkdir -p "$out"

bar="$root/configs/omniglot/maml-5w1s.yaml"
row_args() {
  case "$1" in
    maml) echo "$bar" ;;
    fomaml) echo "$bar --set algorithm.name=fomaml" ;;
    5w5s) echo "$bar --set data.train.shots=5" ;;
    20w1s) echo "$bar --set data.train.ways=20 --set data.test.ways=20" ;;
    anil) echo "$bar --set algorithm.name=anil" ;;
    metasgd) echo "$bar --set algorithm.name=metasgd" ;;
    mamlpp) echo "$root/configs/omniglot/mamlpp-5w1s.yaml" ;;
    protonet) echo "$root/configs/omniglot/protonet-5w1s-cpu.yaml" ;;
    *) echo "speed-table.sh: unknown row '$1'" >&2; exit 2 ;;
  esac
}

# bench ROW BUILD(this|baseline) FIRST(per_task|batched) → DIR/ROW-BUILD-FIRST.json
bench() {
  local cli="$root/metarun"
  [ "$2" = baseline ] && cli="$baseline"
  read -r -a args <<<"$(row_args "$1")"
  local json="$out/$1-$2-$3.json"
  (cd "$out" && "$cli" bench "${args[@]}" --data-root "$data_root" --iterations "$iterations" --warmup "$warmup" \
    --set "execution=$3" --out "$json" > "$out/$1-$2-$3.log" 2>&1) || { echo "speed-table.sh: bench of $1 ($2) failed: $out/$1-$2-$3.log" >&2; exit 1; }
}

builds=(this)
[ -n "$baseline" ] && builds=(baseline this)
for row in $rows; do
  for first in per_task batched; do
    [ "$row" = protonet ] && [ "$first" = batched ] && continue
    for b in "${builds[@]}"; do bench "$row" "$b" "$first"; done
  done
done

python3 - "$out" "$rows" "${builds[*]}" <<'EOF'
import json, os, sys
out, rows, builds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
def mode(row, build, m):
    vals = []
    for first in ("per_task", "batched"):
        f = os.path.join(out, f"{row}-{build}-{first}.json")
        if os.path.exists(f):
            modes = json.load(open(f)).get("modes") or {}
            if m in modes: vals.append(modes[m]["median_seconds"])
    return sum(vals) / len(vals) if vals else None
def cell(v): return "—" if v is None else f"{v:.3f}"
head = "| row |" + "".join(f" {b} per task | {b} batched |" for b in builds) + " batched ÷ per task |"
print(head)
print("|" + "---|" * (head.count("|") - 1))
for row in rows:
    cells, last = [], None
    for b in builds:
        p, q = mode(row, b, "per_task"), mode(row, b, "batched")
        cells += [cell(p), cell(q)]
        last = (p, q)
    ratio = "—" if None in last else f"{last[1] / last[0]:.2f}"
    print(f"| {row} | " + " | ".join(cells) + f" | {ratio} |")
EOF
