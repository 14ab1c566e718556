#!/usr/bin/env bash
# GPU plan 5 (issue 20): a better default model. Builds a clip cache from the carried DAVIS-2016
# train frames (`corrtrack cache build`) and trains two methods one after the other within the
# deadline, exporting each as a float16 model to $OUT, to be scored HERE on val-dev
# (`propagate --davis ../shared/data/davis2016-val-dev --checkpoint OUT/METHOD.ckpt`, then `eval`)
# and adopted only if it beats the bundled model.
# PLAN=stride4 (default): MAST then CorrFlow. PLAN=cycle: CRW then TimeCycle (ResNet-50).
# INIT=assets/models/default.ckpt starts MAST from the bundled model (a longer run of it).
# Here first:  scripts/device/prepare.sh deps; scripts/device/prepare.sh train
# There:       run with carry [".devdeps", ".devdata"]: bash scripts/device/plan5-train.sh
# Dry run here: DRY=1 OUT=/tmp/p5 BUILD_DIR=build-dev BUDGET_S=300 scripts/device/plan5-train.sh
# Writes to $OUT: gpu.txt, train-METHOD.json, metrics-METHOD.jsonl, METHOD.ckpt, plan5.log.
source "$(dirname "$0")/common.sh"
exec > >(tee "$OUT/plan5.log") 2>&1
need_data .devdata/JPEGImages train
build corrtrack
train_cache raw /tmp/train.ctc || exit 1
[ "$DRY" = 1 ] && BATCH=2
crop() { [ "$DRY" = 1 ] && echo 64 || echo "$1"; }   # a dry run trains on small crops

train() {  # method seconds lr [extra train options]
  local m=$1 secs=$2 lr=$3
  shift 3
  echo "training $m for $secs s"
  rm -rf "/tmp/run-$m"   # a rerun on a warm machine starts afresh
  $C --threads 8 train --method "$m" --data /tmp/train.ctc --out "/tmp/run-$m" --batch "${BATCH:-32}" \
    --lr "$lr" --steps 1000000 --time-budget "$secs" --checkpoint-every 1000 --log-every 25 --device "$DEV" --workers "${WORKERS:-8}" "$@" \
    >"$OUT/train-$m.json" 2>"/tmp/train-$m.log"
  echo "rc=$? $(json_line "$OUT/train-$m.json")"
  tail -3 "/tmp/train-$m.log"
  [ -f "/tmp/run-$m/last.ckpt" ] || return
  cp "/tmp/run-$m/metrics.jsonl" "$OUT/metrics-$m.jsonl"
  $C export --checkpoint "/tmp/run-$m/last.ckpt" --out "$OUT/$m.ckpt" --half
}
INIT_ARGS=()
[ -n "${INIT:-}" ] && INIT_ARGS=(--init "$INIT")
LEFT=$(( $(left) - 40 ))
case "${PLAN:-stride4}" in
  stride4)
    train mast $((LEFT * 62 / 100)) 1e-3 --crop "$(crop 224)" "${INIT_ARGS[@]}"
    train corrflow $(( $(left) - 20 )) 5e-4 --crop "$(crop 224)" ;;
  cycle)
    train crw $((LEFT * 50 / 100)) 1e-4 --crop "$(crop 256)" --min-scale 0.8
    train timecycle $(( $(left) - 20 )) 2e-4 --crop "$(crop 240)" --patch "$(crop 80)" --backbone resnet50 --beta1 0.5 --clip-grad 10 ;;
  *) echo "unknown PLAN '$PLAN'"; exit 1 ;;
esac
echo "plan 5 done after $(( $(date +%s) - T0 )) s"
