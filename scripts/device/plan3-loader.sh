#!/usr/bin/env bash
# GPU plan 3 (issue 20): can the training loader feed the GPU? `bench clips` (MAST-style clips:
# 3 frames 4 apart, 224 crops, batch 32) with 0/1/4/8/16 worker threads from each data form the
# LibTorch-only build reads: a raw clip cache, a JPEG clip cache (both built there by
# `corrtrack cache build` from the frame folders) and the frame folders streamed. The H200
# trains MAST at about 234 clips/s at 224² (the figure to beat).
# Here first:  scripts/device/prepare.sh deps; scripts/device/prepare.sh train
# There:       run with carry [".devdeps", ".devdata"]: bash scripts/device/plan3-loader.sh
# Dry run here: DRY=1 OUT=/tmp/p3 BUILD_DIR=build-dev scripts/device/plan3-loader.sh
# Writes to $OUT: gpu.txt, clips.jsonl (one line per data form), plan3.log.
source "$(dirname "$0")/common.sh"
exec > >(tee "$OUT/plan3.log") 2>&1
need_data .devdata/JPEGImages train
build corrtrack
if [ "$DRY" = 1 ]; then WORKERS=0,2; CLIPS=64; else WORKERS=0,1,4,8,16; CLIPS=1200; fi
for codec in raw jpeg; do train_cache "$codec" "/tmp/train-$codec.ctc"; done
# clips FORM DATA [options…]
clips() {
  local form=$1 data=$2
  shift 2
  [ "$(left)" -gt 40 ] || { echo "deadline: no $form"; return; }
  if timeout $(( $(left) - 20 )) $C --threads "$(nproc)" bench clips --data "$data" "$@" --workers "$WORKERS" --crop 224 \
       --clips "$CLIPS" --batch 32 >/tmp/clips.json 2>/tmp/clips.err; then
    json_with /tmp/clips.json form="$form" | tee -a "$OUT/clips.jsonl"
  else
    echo "bench clips $form failed: $(tail -1 /tmp/clips.err)"
  fi
}
clips cache-raw /tmp/train-raw.ctc
clips cache-jpeg /tmp/train-jpeg.ctc
clips folders-stream .devdata/JPEGImages --data-mode stream
echo "plan 3 done after $(( $(date +%s) - T0 )) s"
