#!/usr/bin/env bash
# GPU plan 2 (issue 20): data-parallel training throughput on the GPU machine. `bench train` of
# MAST (batch 32, 224 crops, from a raw clip cache of the carried DAVIS-2016 train frames) in one
# process and with 2 ranks over c10d Gloo on CUDA tensors (ranks share the GPUs round-robin, so
# on a one-GPU machine both ranks use it: this measures the collective's cost, not a speed-up),
# and with one rank per GPU where there are several. NCCL is not built yet (`--backend nccl` is
# refused): that part of the plan waits for it.
# Here first:  scripts/device/prepare.sh deps; scripts/device/prepare.sh train
# There:       run with carry [".devdeps", ".devdata"]: bash scripts/device/plan2-distributed.sh
# Dry run here: DRY=1 OUT=/tmp/p2 BUILD_DIR=build-dev scripts/device/plan2-distributed.sh
# Writes to $OUT: gpu.txt, dist.jsonl (one line per process count), plan2.log.
source "$(dirname "$0")/common.sh"
exec > >(tee "$OUT/plan2.log") 2>&1
need_data .devdata/JPEGImages train
build corrtrack
grep -q "distributed training with c10d Gloo" /tmp/cmake.log || echo "note: this build has no c10d Gloo (see /tmp/cmake.log): only one process will run"
train_cache raw /tmp/train.ctc || exit 1
if [ "$DRY" = 1 ]; then SIZE=(--batch 4 --crop 64 --steps 3 --warmup-steps 1); else SIZE=(--batch 32 --crop 224 --steps 40 --warmup-steps 5); fi
GPUS=$(nvidia-smi -L 2>/dev/null | wc -l)
COUNTS="1 2"
[ "$GPUS" -gt 2 ] && COUNTS="1 2 $GPUS"
for n in $COUNTS; do
  [ "$(left)" -gt 60 ] || { echo "deadline: no run with $n processes"; break; }
  if timeout $(( $(left) - 20 )) $C bench train --method mast --data /tmp/train.ctc "${SIZE[@]}" --device "$DEV" --workers 4 \
       --nproc "$n" --backend gloo >/tmp/dist.json 2>/tmp/dist.err; then
    json_with /tmp/dist.json nproc:="$n" gpus:="$GPUS" | tee -a "$OUT/dist.jsonl"
  else
    echo "bench train with $n processes failed: $(tail -2 /tmp/dist.err)"
  fi
done
echo "plan 2 done after $(( $(date +%s) - T0 )) s"
