#!/usr/bin/env bash
# Training data forms end to end: a JPEG cache built by two workers, a raw cache build killed with
# SIGKILL and continued (byte-identical to an uninterrupted one), training streamed from a folder of
# videos and from a text list (the index stored beside the data and reused), `bench clips` JSON.
set -u
BIN="$1"
SRC="$2"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL $*"; exit 1; }

mkdir -p "$TMP/videos"
for i in 0 1 2 3 4 5 6 7; do cp "$SRC/assets/sample/city.mp4" "$TMP/videos/city$i.mp4"; done

# JPEG cache, two workers.
"$BIN" -q cache build --input "$TMP/videos" --size 96 --codec jpeg --quality 85 --workers 2 --out "$TMP/j.ctc" >"$TMP/j.json" \
  || fail "jpeg cache build"
grep -q '"videos": 8' "$TMP/j.json" || fail "jpeg cache: $(cat "$TMP/j.json")"
"$BIN" -q cache inspect "$TMP/j.ctc" | grep -q '"codec": "jpeg"' || fail "cache inspect does not say jpeg"
echo "ok   jpeg cache of 8 videos with 2 workers"

# A raw build killed after its first finished video continues where it stopped.
"$BIN" -q cache build --input "$TMP/videos" --size 0 --out "$TMP/whole.ctc" >/dev/null || fail "uninterrupted build"
"$BIN" -q cache build --input "$TMP/videos" --size 0 --out "$TMP/r.ctc" >/dev/null 2>&1 &
PID=$!
for _ in $(seq 1 1200); do
  ls "$TMP/r.ctc.parts/"0*.json >/dev/null 2>&1 && break
  kill -0 $PID 2>/dev/null || break
  sleep 0.05
done
kill -9 $PID 2>/dev/null || fail "the build ended before it could be killed"
wait $PID 2>/dev/null
[ -e "$TMP/r.ctc" ] && fail "a killed build left a cache file"
"$BIN" -q cache build --input "$TMP/videos" --size 0 --out "$TMP/r.ctc" >"$TMP/r.json" || fail "continued build"
RESUMED=$(grep '"resumed"' "$TMP/r.json" | tr -dc 0-9)
[ -n "$RESUMED" ] && [ "$RESUMED" -ge 1 ] || fail "nothing resumed: $(cat "$TMP/r.json")"
cmp -s "$TMP/r.ctc" "$TMP/whole.ctc" || fail "the continued cache differs from an uninterrupted build"
[ -e "$TMP/r.ctc.parts" ] && fail "the parts folder was left behind"
echo "ok   killed build continued with $RESUMED finished videos; identical to an uninterrupted build"

# Streaming: nothing built first; the index goes into the folder and is reused.
"$BIN" train --method mast --data "$TMP/videos" --data-mode stream --workers 2 --cache-size 64 --crop 32 --batch 2 --steps 2 \
  --out "$TMP/run" >"$TMP/train.json" 2>"$TMP/train.err" || fail "streamed training: $(tail -3 "$TMP/train.err")"
[ -s "$TMP/videos/.corrtrack-index.json" ] || fail "no index beside the videos"
[ -e "$TMP/run/clips.ctc" ] && fail "streaming built a cache"
grep -q "8 indexed now" "$TMP/train.err" || fail "the first run did not index 8 videos: $(grep streaming "$TMP/train.err")"
"$BIN" -q inspect checkpoint "$TMP/run/last.ckpt" | grep -q '"data_form": "stream"' || fail "the checkpoint does not record the stream"
"$BIN" train --method mast --data "$TMP/videos" --data-mode stream --cache-size 64 --crop 32 --batch 2 --steps 1 \
  --out "$TMP/run2" >/dev/null 2>"$TMP/train2.err" || fail "second streamed run"
grep -q "0 indexed now, 8 from the index" "$TMP/train2.err" || fail "the index was not reused: $(grep streaming "$TMP/train2.err")"
echo "ok   streamed training from a folder; the index is stored beside the videos and reused"

# A text list streams by default (auto), paths relative to the list.
printf '# two clips\nvideos/city0.mp4\nvideos/city1.mp4\n' > "$TMP/list.txt"
"$BIN" train --method crw --data "$TMP/list.txt" --cache-size 96 --crop 96 --batch 1 --clip-frames 2 --frame-gap 1 --steps 1 \
  --device cpu --out "$TMP/run3" >/dev/null 2>"$TMP/train3.err" || fail "training from a list: $(tail -3 "$TMP/train3.err")"
grep -q "streaming clips from 2 videos" "$TMP/train3.err" || fail "a list did not stream: $(grep -i "clips\|cache" "$TMP/train3.err" | head -3)"
[ -s "$TMP/list.txt.corrtrack-index.json" ] || fail "no index beside the list"
echo "ok   a text list streams by default"

# bench clips: one result per worker count.
"$BIN" -q bench clips --data "$TMP/j.ctc" --workers 0,2 --clips 24 --batch 6 --crop 64 >"$TMP/bench.json" || fail "bench clips"
grep -q '"form": "jpeg cache"' "$TMP/bench.json" || fail "bench clips form: $(cat "$TMP/bench.json")"
[ "$(grep -c '"clips_per_s"' "$TMP/bench.json")" -eq 2 ] || fail "bench clips results: $(cat "$TMP/bench.json")"
echo "ok   bench clips reports each worker count"
