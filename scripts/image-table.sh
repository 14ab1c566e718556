#!/usr/bin/env bash
# Reproduces the README's Fashion-MNIST table: every image method trained with its own recipe
# (`train --method M` with no optimiser options: the paper's optimiser, rate, weight decay,
# temperature and momentum, or for SimCLR, BYOL and SwAV solo-learn's small-batch values, which
# measured better; 5 % warm-up, cosine decay over the run) for the same CPU budget, then
# `eval-image` of checkpoints along the way; plus the raw-pixel and random-encoder rows and a plot
# of kNN top-1 against training time.
#
# The budget is turned into steps first: `bench train` measures the method's step time on this
# machine and the run gets budget / step time steps (so the cosine ends when the budget does), with
# --time-budget as a cap. Run it with nothing else on the machine, or give MS_<method>=the step time
# measured alone (ms) and STEPS_<method>=N (a busy machine then only makes the run slower, not
# different; the time axis stays steps x MS). The bench is an estimate: DeepCluster and SeLa's
# 30 timed steps include one re-clustering of the whole set, so their runs get too few steps, and
# PCL re-clusters once an epoch too; give them STEPS_ from a first run's ms_per_step
# (OUT/<method>.train.json). Check `vmstat`'s steal column before timing: a host that takes CPU
# time away makes every step slower (BYOL: 796 ms a step against 496 alone).
#
# Usage: scripts/image-table.sh [SECONDS_PER_METHOD] [OUT_DIR] [METHOD...]
# Environment: THREADS=N passes --threads N; KEEP=1 keeps methods that already have results;
# CORRTRACK_BIN=path; STEPS_<method>=N fixes a method's step count, MS_<method>=ms its step time.
# Writes OUT/<method>.json (final scores), OUT/knn/<method>.jsonl (step, elapsed_s, knn_top1 per
# checkpoint; elapsed_s = step x the measured step time), OUT/knn-vs-time.png (with pixels and the
# random encoder as flat lines).
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET="${1:-900}"
OUT="${2:-out/image-table}"
shift $(( $# < 2 ? $# : 2 ))
METHODS=("$@")
[ ${#METHODS[@]} -gt 0 ] || METHODS=(simclr moco byol swav npid sela deepcluster iic pcl supcon cpc)
B="${CORRTRACK_BIN:-build/app/corrtrack}"
T=(${THREADS:+--threads "$THREADS"})
COMMON=(--data fashion-mnist --width 16)
json() { python3 -c "import json,sys;print(json.load(open(sys.argv[1]))$2)" "$1"; }
mkdir -p "$OUT/knn"
for f in pixels random; do
  if [ "${KEEP:-0}" != 1 ] || [ ! -s "$OUT/$f.json" ]; then
    "$B" "${T[@]}" -q eval-image --features "$f" --width 16 --json "$OUT/$f.json" >/dev/null
  fi
  # A flat reference line over the budget for the plot.
  python3 -c "import json,sys;k=json.load(open(sys.argv[1]))['knn_top1_k20'];[print(json.dumps({'step':t,'elapsed_s':t,'knn_top1':k})) for t in (0,int(sys.argv[2]))]" \
    "$OUT/$f.json" "$BUDGET" >"$OUT/knn/$f.jsonl"
done
for m in "${METHODS[@]}"; do
  if [ "${KEEP:-0}" = 1 ] && [ -s "$OUT/$m.json" ]; then echo "$m: kept"; continue; fi
  rm -rf "${OUT:?}/$m"
  msvar="MS_$m"
  if [ -n "${!msvar:-}" ]; then
    ms="${!msvar}"
  else
    "$B" "${T[@]}" -q bench train --method "$m" "${COMMON[@]}" --batch 256 --steps 30 --warmup-steps 5 >"$OUT/$m.bench.json"
    ms=$(json "$OUT/$m.bench.json" "['ms_per_step']")
  fi
  var="STEPS_$m"
  steps="${!var:-$(python3 -c "print(max(8, int($BUDGET * 1000 / $ms)))")}"
  cap=(--time-budget $(( BUDGET * 11 / 10 )))   # a measured count on a machine that turned busy
  [ -z "${!var:-}" ] || cap=()                   # a fixed count runs to the end
  "$B" "${T[@]}" -q train --method "$m" "${COMMON[@]}" --out "$OUT/$m" --steps "$steps" "${cap[@]}" \
    --checkpoint-every $(( (steps + 5) / 6 )) --keep-checkpoints --log-every 25 >"$OUT/$m.train.json"
  # The time axis: the run's own step time (it ran alone), or MS_<method> on a busy machine; not
  # the bench's estimate, which can be far off (see the header).
  [ -n "${!msvar:-}" ] || ms=$(json "$OUT/$m.train.json" "['ms_per_step']")
  : >"$OUT/knn/$m.jsonl.tmp"
  for ck in $(ls "$OUT/$m/checkpoints/"*.ckpt | sort -t- -k2 -n); do
    s=$(basename "$ck" .ckpt); s=${s#step-}
    "$B" "${T[@]}" -q eval-image --checkpoint "$ck" --json "$OUT/$m/eval-$s.json" >/dev/null
    python3 -c "import json,sys;e=json.load(open(sys.argv[1]));print(json.dumps({'step':int(sys.argv[2]),'elapsed_s':int(sys.argv[2])*float(sys.argv[3])/1000,'knn_top1':e['knn_top1_k20']}))" \
      "$OUT/$m/eval-$s.json" "$s" "$ms" >>"$OUT/knn/$m.jsonl.tmp"
  done
  mv "$OUT/knn/$m.jsonl.tmp" "$OUT/knn/$m.jsonl"
  cp "$OUT/$m/eval-$(json "$OUT/$m.train.json" "['last_step']").json" "$OUT/$m.json"
  echo "$m ($steps steps of $ms ms): $(tr -d ' \n' <"$OUT/$m.json")"
done
runs=()
for m in pixels random "${METHODS[@]}"; do [ -s "$OUT/knn/$m.jsonl" ] && runs+=("$OUT/knn/$m.jsonl"); done
[ ${#runs[@]} -eq 0 ] || "$B" -q plot --x time "${runs[@]}" --out "$OUT/knn-vs-time.png"
