#!/usr/bin/env bash
# Peak memory and seconds per meta-iteration against the number of inner steps, for MAML, MAML
# with checkpointed inner steps (algorithm.checkpoint_inner_steps) and iMAML, on Omniglot 5-way
# 1-shot (configs/omniglot/maml-5w1s.yaml with a smaller meta-batch): the table in
# docs/performance.md, "Memory against inner steps". Each cell is one `metarun bench` run; the
# per-task mode's figures are printed (`execution=per_task`; bench times the batched mode too and keeps it in
# the JSON).
#
#   scripts/memory-table.sh --data-root ../shared/datasets [--model conv4|resnet12] [--filters N]
#                           [--steps "1 5 10 25 50"] [--variants "maml maml-checkpointed imaml"]
#                           [--iterations 2] [--meta-batch 1] [--out DIR]
#
# One worker runs one task at a time, so the peak is one task's whatever the meta-batch; a meta-batch
# of 1 keeps each run short. METARUN overrides the command that runs the CLI (default ./metarun).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

data_root="" model=conv4 filters=0 steps="1 5 10 25 50" variants="maml maml-checkpointed imaml" iterations=2 meta_batch=1 out="${TMPDIR:-/tmp}/metarun-memory-table"
usage() {
  echo "usage: scripts/memory-table.sh --data-root DIR [--model conv4|resnet12] [--filters N] [--steps \"1 5 10 25 50\"] [--variants \"maml maml-checkpointed imaml\"] [--iterations 2] [--meta-batch 1] [--out DIR]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --data-root) data_root="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --filters) filters="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --variants) variants="$2"; shift 2 ;;
    --iterations) iterations="$2"; shift 2 ;;
    --meta-batch) meta_batch="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "memory-table.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$data_root" ] || usage
case "$model" in conv4|resnet12) ;; *) echo "memory-table.sh: --model is conv4 or resnet12 (got '$model')" >&2; exit 2 ;; esac
mkdir -p "$out"
read -r -a metarun <<<"${METARUN:-$root/metarun}"

# A top-level number of a bench.json (the configured mode's; the batched mode's sit deeper).
field() { sed -n "s/^  \"$2\": \([-0-9.]*\),\{0,1\}$/\1/p" "$1"; }

model_keys=(--set "model.name=$model" --set "model.filters=$filters")
# The config's downsample key is conv4's; resnet12 reads none.
[ "$model" = resnet12 ] && model_keys+=(--set model.downsample=auto)
echo "| model | inner steps | variant | peak above start (MB) | peak RSS (MB) | s / iteration |"
echo "| --- | ---: | --- | ---: | ---: | ---: |"
for k in $steps; do
  for variant in $variants; do
    case "$variant" in
      maml) keys=() ;;
      maml-checkpointed) keys=(--set algorithm.checkpoint_inner_steps=true) ;;
      imaml) keys=(--set algorithm.name=imaml) ;;
      *) echo "memory-table.sh: a variant is maml, maml-checkpointed or imaml (got '$variant')" >&2; exit 2 ;;
    esac
    json="$out/$model-$variant-k$k.json"
    "${metarun[@]}" bench "$root/configs/omniglot/maml-5w1s.yaml" --data-root "$data_root" \
      --iterations "$iterations" --warmup 1 --out "$json" "${model_keys[@]}" \
      --set "algorithm.inner_steps=$k" --set "algorithm.meta_batch_size=$meta_batch" --set workers=1 --set execution=per_task "${keys[@]}" >"$json.log"
    echo "| $model | $k | $variant | $(field "$json" peak_growth_mb) | $(field "$json" peak_rss_mb) | $(field "$json" median_seconds) |"
  done
done
