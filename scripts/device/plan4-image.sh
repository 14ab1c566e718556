#!/usr/bin/env bash
# GPU plan 4 (issue 20): the image methods' GPU recipe. SimCLR, MoCo and BYOL (METHODS) with a
# ResNet-18 (CIFAR stem: 3x3 stride 1, no max-pool) on 32x32 views of Fashion-MNIST, each with its
# own recipe (`train --method X`), trained side by side on the one GPU within the deadline, then
# kNN (k=20, k=200), linear probe and NMI on the 10k test images (`eval-image`).
# The step count of each run comes from its measured speed with the others running (so the
# recipe's cosine schedule ends with the budget); --time-budget stops it regardless.
# Here first:  scripts/device/prepare.sh deps; scripts/device/prepare.sh fashion-mnist
# There:       run with carry [".devdeps", ".devdata"]: bash scripts/device/plan4-image.sh
# Dry run here: DRY=1 OUT=/tmp/p4 BUILD_DIR=build-dev scripts/device/plan4-image.sh (a width-8
# ConvNet instead of the ResNet-18, a few steps: it checks the script, not the recipe).
# Writes to $OUT: gpu.txt, image.jsonl (one line per method: speed, steps, kNN, linear, NMI),
# metrics-METHOD.jsonl (the loss curve of each), plan4.log.
source "$(dirname "$0")/common.sh"
exec > >(tee "$OUT/plan4.log") 2>&1
need_data .devdata/fashion-mnist fashion-mnist
export CORRTRACK_FASHION_MNIST=$PWD/.devdata/fashion-mnist
build corrtrack
METHODS=${METHODS:-simclr moco byol}
N=$(echo $METHODS | wc -w)
THREADS=$(( $(nproc) / N ))
if [ "$DRY" = 1 ]; then ENC=(--encoder convnet --width 8); EVAL_S=120; else ENC=(--encoder resnet18); EVAL_S=${EVAL_S:-75}; fi
COMMON=(--data fashion-mnist "${ENC[@]}" --image-size 32 --device "$DEV")

# `wait` on the jobs started here by PID: a bare `wait` would also wait for the log's tee.
pids=()
waitall() { [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"; pids=(); }
# Speed of each method while the others run too (as they will train).
for m in $METHODS; do
  $C --threads "$THREADS" bench train --method "$m" "${COMMON[@]}" --steps 8 --warmup-steps 3 >"/tmp/speed-$m.json" 2>"/tmp/speed-$m.err" &
  pids+=($!)
done
waitall
TRAIN_S=$(( $(left) - EVAL_S - 20 ))
[ "$TRAIN_S" -gt 20 ] || { echo "no time left to train ($TRAIN_S s)"; exit 1; }
echo "training $METHODS side by side for $TRAIN_S s"
for m in $METHODS; do
  ms=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ms_per_step"])' "/tmp/speed-$m.json") ||
    { echo "bench train $m failed: $(tail -2 /tmp/speed-$m.err)"; continue; }
  steps=$(python3 -c "print(max(5, int($TRAIN_S * 1000 / $ms * 0.9)))")
  [ "$DRY" = 1 ] && steps=5
  echo "$m: $ms ms/step -> $steps steps"
  echo "$ms $steps" >"/tmp/plan-$m"
  rm -rf "/tmp/run-$m"
  $C --threads "$THREADS" train --method "$m" "${COMMON[@]}" --steps "$steps" --time-budget "$TRAIN_S" --log-every 50 \
    --checkpoint-every 100000 --out "/tmp/run-$m" >"/tmp/train-$m.json" 2>"/tmp/train-$m.log" &
  pids+=($!)
done
waitall
for m in $METHODS; do
  [ -f "/tmp/run-$m/last.ckpt" ] || { echo "$m: no checkpoint: $(tail -2 /tmp/train-$m.log)"; continue; }
  cp "/tmp/run-$m/metrics.jsonl" "$OUT/metrics-$m.jsonl"
  # On the GPU first; on the CPU if that fails (the evaluation has only run on CPUs before).
  ( $C --threads "$THREADS" eval-image --checkpoint "/tmp/run-$m/last.ckpt" --device "$DEV" --json "/tmp/eval-$m.json" >/dev/null 2>"/tmp/eval-$m.err" ||
    $C --threads "$THREADS" eval-image --checkpoint "/tmp/run-$m/last.ckpt" --device cpu --json "/tmp/eval-$m.json" >/dev/null 2>>"/tmp/eval-$m.err" ) &
  pids+=($!)
done
waitall
for m in $METHODS; do
  [ -f "/tmp/eval-$m.json" ] || { echo "$m: no evaluation: $(tail -2 /tmp/eval-$m.err)"; continue; }
  python3 - "$m" "$TRAIN_S" <<'EOF' | tee -a "$OUT/image.jsonl"
import json, sys
m, budget = sys.argv[1], int(sys.argv[2])
ms, planned = open(f"/tmp/plan-{m}").read().split()
train = json.load(open(f"/tmp/train-{m}.json"))
ev = json.load(open(f"/tmp/eval-{m}.json"))
print(json.dumps(dict(method=m, budget_s=budget, bench_ms_per_step=float(ms), planned_steps=int(planned),
                      train={k: train.get(k) for k in ("last_step", "seconds", "ms_per_step", "budget_reached", "final_loss")},
                      eval=ev)))
EOF
done
echo "plan 4 done after $(( $(date +%s) - T0 )) s"
