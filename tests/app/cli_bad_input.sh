#!/usr/bin/env bash
# Bad input to the corrtrack command: each case must exit non-zero with exactly one error line
# that names the offending file or argument, and leave no result files behind.
set -u
BIN="$1"
SRC="$2"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
VIDEO="$SRC/assets/sample/city.mp4"
MASK="$SRC/assets/sample/city_00000.png"
fails=0
passes=0

# expect_error NAME NEEDLE -- ARGS...: non-zero exit, one stderr line containing NEEDLE.
expect_error() {
  local name="$1" needle="$2"
  shift 3
  local err rc lines
  "$BIN" -q "$@" >"$TMP/stdout" 2>"$TMP/stderr"
  rc=$?
  err="$(cat "$TMP/stderr")"
  lines=$(grep -c . "$TMP/stderr")
  if [ $rc -eq 0 ]; then
    echo "FAIL $name: exit code 0"; fails=$((fails + 1)); return
  fi
  if [ "$lines" -ne 1 ] || ! grep -q "^corrtrack: error: " "$TMP/stderr"; then
    echo "FAIL $name: expected one 'corrtrack: error:' line, got: $err"; fails=$((fails + 1)); return
  fi
  if ! grep -qF -- "$needle" "$TMP/stderr"; then
    echo "FAIL $name: error does not name '$needle': $err"; fails=$((fails + 1)); return
  fi
  if [ -d "$TMP/out" ] && [ -n "$(find "$TMP/out" -name '*.png' -print -quit)" ]; then
    echo "FAIL $name: left result files in $TMP/out"; fails=$((fails + 1)); return
  fi
  echo "ok   $name: $err"
  passes=$((passes + 1))
}

printf 'not a video\n' > "$TMP/notes.mp4"
printf 'not a checkpoint\n' > "$TMP/bad.ckpt"
: > "$TMP/empty.mp4"
printf 'x' > "$TMP/afile"
"$BIN" -q mask polygon --like "$VIDEO" --object "1:0,0 1,0 0,1" --out "$TMP/none.png"   # area below one pixel centre

expect_error missing-video "missing.mp4" -- propagate --video "$TMP/missing.mp4" --mask "$MASK" --features pixels --out "$TMP/out"
expect_error text-as-mp4 "notes.mp4" -- propagate --video "$TMP/notes.mp4" --mask "$MASK" --features pixels --out "$TMP/out"
expect_error zero-byte "empty.mp4" -- inspect video "$TMP/empty.mp4"
expect_error mask-size "city_00000.png" -- propagate --video "$VIDEO" --size 320x240 --mask "$MASK" --features pixels --out "$TMP/out"
expect_error mask-no-objects "none.png" -- propagate --video "$VIDEO" --mask "$TMP/none.png" --features pixels --out "$TMP/out"
expect_error anchor-past-end "500" -- propagate --video "$VIDEO" --anchor "500:$MASK" --features pixels --out "$TMP/out"
expect_error anchor-syntax "--anchor" -- propagate --video "$VIDEO" --anchor "five:$MASK" --features pixels --out "$TMP/out"
expect_error bad-checkpoint "bad.ckpt" -- propagate --video "$VIDEO" --mask "$MASK" --checkpoint "$TMP/bad.ckpt" --out "$TMP/out"
expect_error unknown-features "sift" -- propagate --video "$VIDEO" --mask "$MASK" --features sift --out "$TMP/out"
expect_error out-not-writable "afile" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels --out "$TMP/afile/sub"
expect_error eval-missing-results "nowhere" -- eval --davis "$SRC/tests" --results "$TMP/nowhere"
mkdir -p "$TMP/noframes"
expect_error empty-folder "noframes" -- inspect video "$TMP/noframes"

# Training and its data.
printf 'CTCACHE1 and then nothing useful' > "$TMP/bad.ctc"
mkdir -p "$TMP/novideos" "$TMP/short"
for k in 0 1 2; do cp "$MASK" "$TMP/short/0000$k.png"; done
expect_error train-unknown-method "simclrx" -- train --method simclrx --data "$VIDEO" --out "$TMP/run"
expect_error train-missing-data "nowhere" -- train --method mast --data "$TMP/nowhere" --out "$TMP/run"
expect_error train-corrupt-cache "bad.ctc" -- train --method mast --data "$TMP/bad.ctc" --out "$TMP/run"
expect_error train-no-videos "novideos" -- train --method mast --data "$TMP/novideos" --out "$TMP/run"
expect_error train-clips-too-short "shorter than the 9 frames" -- train --method corrflow --data "$TMP/short" --crop 32 --out "$TMP/run"
expect_error train-bad-lr "--lr" -- train --method mast --data "$TMP/short" --lr -1 --out "$TMP/run2"
expect_error train-bad-lars-eta "--lars-eta" -- train --method mast --data "$TMP/short" --optimizer lars --lars-eta 0 --out "$TMP/run2"
expect_error train-bad-key-bn-groups "--key-bn-groups" -- train --method moco --data fashion-mnist --key-bn-groups 0 --out "$TMP/run2"
expect_error train-lars-eta-with-adam "--lars-eta applies to --optimizer lars only" -- train --method mast --data "$TMP/short" --lars-eta 0.02 --out "$TMP/run2"
expect_error train-crw-bad-nodes "--nodes" -- train --method crw --data "$TMP/short" --nodes pixels --out "$TMP/run4"
expect_error train-bad-precision "--precision must be fp32, bf16 or auto" -- train --method mast --data "$TMP/short" --precision half --out "$TMP/run2"
expect_error train-crw-too-short "shorter than the 10 frames" -- train --method crw --data "$TMP/short" --crop 96 --out "$TMP/run5"
expect_error train-crw-one-patch "--crop" -- train --method crw --data "$TMP/short" --crop 64 --out "$TMP/run5"
expect_error train-timecycle-bad-backbone "--backbone" -- train --method timecycle --data "$TMP/short" --backbone resnet34 --out "$TMP/run6"
expect_error train-timecycle-bad-patch "--patch" -- train --method timecycle --data "$TMP/short" --crop 64 --patch 80 --out "$TMP/run7"
expect_error propagate-bad-protocol "--protocol" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels --protocol stm --out "$TMP/out"
expect_error cache-corrupt "bad.ctc" -- cache inspect "$TMP/bad.ctc"
expect_error train-bad-data-mode "--data-mode" -- train --method mast --data "$TMP/short" --data-mode tape --out "$TMP/run8"
expect_error train-bad-workers "--workers" -- train --method mast --data "$TMP/short" --workers -2 --crop 32 --out "$TMP/run9"
printf 'short\nmissing.mp4\n' > "$TMP/list.txt"
expect_error train-list-missing-entry "list.txt' line 2" -- train --method mast --data "$TMP/list.txt" --out "$TMP/run10"
expect_error cache-bad-codec "--codec" -- cache build --input "$TMP/short" --codec webp --out "$TMP/x.ctc"
expect_error cache-bad-quality "--quality" -- cache build --input "$TMP/short" --codec jpeg --quality 101 --out "$TMP/x.ctc"
expect_error cache-bad-workers "--workers" -- cache build --input "$TMP/short" --workers 0 --out "$TMP/x.ctc"
expect_error bench-clips-bad-workers "--workers" -- bench clips --data "$TMP/short" --workers 0,-1
expect_error image-train-missing-data "nowhere" -- train --method simclr --data "$TMP/nowhere" --out "$TMP/run3"
expect_error eval-image-video-checkpoint "default.ckpt" -- eval-image --checkpoint "$SRC/assets/models/default.ckpt" --data "$TMP/novideos"
expect_error export-not-a-checkpoint "bad.ckpt" -- export --checkpoint "$TMP/bad.ckpt" --out "$TMP/model.ckpt"
expect_error export-average-not-a-checkpoint "bad.ckpt" -- export --checkpoint "$SRC/assets/models/default.ckpt" --average "$TMP/bad.ckpt" --out "$TMP/soup.ckpt"

# Parse errors and absurd settings: the same one-line contract, exit 1, nothing started.
expect_error parse-nan "--topk" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels --topk nan --out "$TMP/out"
expect_error parse-unknown-option "--frobnicate" -- propagate --video "$VIDEO" --frobnicate --out "$TMP/out"
expect_error parse-missing-out "--out" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels
expect_error threads-absurd "--threads" -- --threads 100000 inspect video "$VIDEO"
expect_error threads-negative "--threads" -- --threads -1 inspect video "$VIDEO"
# Nonsense settings are refused before any work (they used to run with exit 0 or crash).
for bad in "--scale 0.0001" "--radius -1" "--radius nan" "--temperature inf" "--context 100000000" "--tile 100000"; do
  opt="${bad%% *}"
  # shellcheck disable=SC2086
  expect_error "setting $bad" "${opt#--}" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels $bad --out "$TMP/out"
done
expect_error size-junk "--size" -- propagate --video "$VIDEO" --size 160x90junk --mask "$MASK" --features pixels --out "$TMP/out"
expect_error synth-size "--size" -- bench synth-video --out "$TMP/s.mp4" --size 16x --seconds 1
expect_error synth-objects "--objects" -- bench synth-video --out "$TMP/s.mp4" --size 64x48 --seconds 1 --objects 0
expect_error synth-mask-frame "--mask-frame" -- bench synth-video --out "$TMP/s.mp4" --size 64x48 --seconds 1 --mask "$TMP/m.png" --mask-frame 25
expect_error adapt-pixels "--adapt" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels --adapt 5 --out "$TMP/out"
expect_error adapt-negative "--adapt" -- propagate --video "$VIDEO" --mask "$MASK" --adapt -1 --out "$TMP/out"
expect_error adapt-bn-unknown "--adapt-bn must be train or frozen" -- propagate --video "$VIDEO" --mask "$MASK" --adapt 5 --adapt-bn fixed --out "$TMP/out"
expect_error adapt-anchor-negative "--adapt-anchor must be a number >= 0" -- propagate --video "$VIDEO" --mask "$MASK" --adapt 5 --adapt-anchor -1 --out "$TMP/out"
expect_error init-resume "--init" -- train --method mast --data "$VIDEO" --init "$SRC/assets/models/default.ckpt" --resume --out "$TMP/run"
for bad in "--clip-grad -1" "--warmup -1" "--min-scale 2" "--jitter nan" "--time-budget -1"; do
  opt="${bad%% *}"
  # shellcheck disable=SC2086
  expect_error "train $bad" "$opt" -- train --method mast --data "$TMP/short" $bad --crop 32 --steps 2 --out "$TMP/run-bad"
done

# A multi-sequence run checks every sequence first: nothing is written when one is missing.
mkdir -p "$TMP/davis/JPEGImages/seqA" "$TMP/davis/Annotations/seqA"
for k in 00000 00001 00002; do cp "$MASK" "$TMP/davis/JPEGImages/seqA/$k.png"; done
cp "$MASK" "$TMP/davis/Annotations/seqA/00000.png"
expect_error davis-missing-sequence "nosuchseq" -- propagate --davis "$TMP/davis" --sequences seqA,nosuchseq --features pixels --out "$TMP/dout"
if [ -e "$TMP/dout/seqA" ]; then echo "FAIL davis-nothing-written: seqA was written"; fails=$((fails + 1));
else echo "ok   davis-nothing-written: no sequence landed"; passes=$((passes + 1)); fi

# Special files: a pipe as input is refused (it used to block forever); outputs onto a pipe are
# refused and the pipe stays a pipe (the atomic rename used to replace it with a regular file).
mkfifo "$TMP/pipe.mp4" "$TMP/pipe.ckpt"
expect_error fifo-video "pipe.mp4" -- propagate --video "$TMP/pipe.mp4" --mask "$MASK" --features pixels --out "$TMP/out"
expect_error fifo-export "pipe.ckpt" -- export --checkpoint "$SRC/assets/models/default.ckpt" --out "$TMP/pipe.ckpt"
expect_error unknown-device "gpu" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels --device gpu --out "$TMP/out"
expect_error unknown-precision "fp16" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels --precision fp16 --out "$TMP/out"
expect_error unknown-feedback "--feedback" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels --feedback argmax --out "$TMP/out"
expect_error bad-long-term "--long-term" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels --mode mast --long-term 0,five --out "$TMP/out"
expect_error memory-without-first-reference "long-term 0" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels --mode mast --long-term 5 --short-term 3 --out "$TMP/out"
expect_error feedback-power-zero "feedback power" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels --feedback-power 0 --out "$TMP/out"
expect_error crw-topk-zero "top-k" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels --topk 0 --out "$TMP/out"
expect_error bench-objects-zero "--objects" -- bench propagate --video "$VIDEO" --features pixels --objects 0
expect_error bench-objects-with-mask "--objects" -- bench propagate --video "$VIDEO" --mask "$MASK" --features pixels --objects 5
expect_error soft-is-out "--soft" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels --out "$TMP/out" --soft "$TMP/out/"
expect_error bench-clicks-not-davis "$TMP/afile" -- bench clicks --davis "$TMP/afile"
expect_error bench-clicks-zero "--max-clicks" -- bench clicks --davis "$TMP" --max-clicks 0
# Inspection and plots.
expect_error inspect-point-outside "900,10" -- inspect features --video "$VIDEO" --features pixels --point 900,10 --out "$TMP/out"
expect_error inspect-point-syntax "--point" -- inspect features --video "$VIDEO" --features pixels --point 10x10 --out "$TMP/out"
expect_error inspect-frame-outside "--frame 99" -- inspect features --video "$VIDEO" --features pixels --frame 99 --out "$TMP/out"
expect_error tracks-point-outside "outside" -- inspect tracks --video "$VIDEO" --features pixels --points 10,400 --out "$TMP/out"
expect_error tracks-first-outside "first frame 40" -- inspect tracks --video "$VIDEO" --features pixels --points 10,10 --first 40 --out "$TMP/out"
expect_error plot-missing-run "no-such-run" -- plot "$TMP/no-such-run" --out "$TMP/c.png"
mkfifo "$TMP/fifo.jsonl"
expect_error plot-fifo "not a regular file" -- plot "$TMP/fifo.jsonl" --out "$TMP/c.png"
printf 'garbage\n' > "$TMP/metrics.jsonl"
expect_error plot-unreadable-metrics "metrics.jsonl" -- plot "$TMP/metrics.jsonl" --out "$TMP/c.png"
printf '{"step":1,"loss":1}\n' > "$TMP/m2.jsonl"
expect_error plot-bad-extension ".png or .svg" -- plot "$TMP/m2.jsonl" --out "$TMP/c.jpg"
expect_error embeddings-bad-data "nowhere" -- inspect embeddings --data "$TMP/nowhere" --out "$TMP/out"
if [ -p "$TMP/pipe.ckpt" ]; then echo "ok   fifo-export-kept: still a pipe"; passes=$((passes + 1));
else echo "FAIL fifo-export-kept: the pipe was replaced"; fails=$((fails + 1)); fi
for rc_case in "--topk nan" "--frobnicate"; do
  # shellcheck disable=SC2086
  "$BIN" -q propagate --video "$VIDEO" --mask "$MASK" --features pixels $rc_case --out "$TMP/out" 2>/dev/null
  rc=$?
  if [ $rc -eq 1 ]; then echo "ok   exit-code $rc_case: 1"; passes=$((passes + 1));
  else echo "FAIL exit-code $rc_case: $rc (expected 1)"; fails=$((fails + 1)); fi
done

# An overlay container we do not write: refused before anything, and no --out folder appears.
expect_error overlay-gif "x.gif" -- propagate --video "$VIDEO" --mask "$MASK" --features pixels --out "$TMP/gif-out" --overlay "$TMP/x.gif"
if [ -e "$TMP/gif-out" ]; then echo "FAIL overlay-gif: left the --out folder behind"; fails=$((fails + 1));
else echo "ok   overlay-gif: no --out folder"; passes=$((passes + 1)); fi
# A failure after the output folder was made (here: the overlay video cannot be written) removes
# the folder it made, instead of leaving it empty.
# (its folder is a file: no one, root included, can create it).
"$BIN" -q propagate --video "$VIDEO" --mask "$MASK" --features pixels --out "$TMP/late-out" --overlay "$TMP/notes.mp4/o.mp4" 2>/dev/null
if [ $? -ne 0 ] && [ ! -e "$TMP/late-out" ]; then echo "ok   late-failure: exit 1, no empty --out folder"; passes=$((passes + 1));
else echo "FAIL late-failure: exit 0 or an empty --out folder left"; fails=$((fails + 1)); fi
version=$("$BIN" --version)
if echo "$version" | grep -Eq '^corrtrack [0-9]+\.[0-9]+\.[0-9]+$'; then echo "ok   --version: $version"; passes=$((passes + 1));
else echo "FAIL --version: '$version'"; fails=$((fails + 1)); fi

# Killed mid-run: the masks already computed stay in the hidden staging folder, never in --out.
timeout -s KILL 3 "$BIN" -q propagate --video "$VIDEO" --mask "$MASK" --features random --out "$TMP/killed" 2>/dev/null
if [ -n "$(find "$TMP/killed" -name '*.png' -print -quit 2>/dev/null)" ]; then
  echo "FAIL killed-run: partial masks in the output folder"; fails=$((fails + 1))
else
  echo "ok   killed-run: output folder holds no partial masks"; passes=$((passes + 1))
fi

echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
