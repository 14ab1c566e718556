#!/usr/bin/env bash
# End to end through the command: propagate the bundled sample (masks, overlay video and overlay
# frames), then a two-object DAVIS-layout set through propagate --davis and eval.
set -u
BIN="$1"
SRC="$2"
DATA="${CORRTRACK_DATA_DIR:-$3}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fails=0
passes=0
check() {  # check NAME CONDITION-COMMAND...
  local name="$1"; shift
  if "$@"; then echo "ok   $name"; passes=$((passes + 1)); else echo "FAIL $name"; fails=$((fails + 1)); fi
}

"$BIN" -q propagate --video "$SRC/assets/sample/city.mp4" --mask "$SRC/assets/sample/city_00000.png" --features pixels --context 4 \
  --out "$TMP/masks" --overlay "$TMP/overlay.mp4" --overlay-frames "$TMP/overlay"
check "propagate exits 0" test $? -eq 0
check "40 masks named like the frames" test "$(ls "$TMP/masks" | wc -l)" -eq 40 -a -f "$TMP/masks/00039.png"
check "40 overlay frames" test "$(ls "$TMP/overlay" | wc -l)" -eq 40
frames=$("$BIN" -q inspect video "$TMP/overlay.mp4" --json | grep '"frame_count"' | tr -dc '0-9')
check "overlay video has 40 frames" test "$frames" = "40"
check "no staging folders left" test -z "$(find "$TMP" -maxdepth 1 -name '.*partial*' -print -quit)"

# --coco: a COCO data set of the 40 masks; every annotation's runs cover the frame and its area
# is the sum of its object runs.
"$BIN" -q propagate --video "$SRC/assets/sample/city.mp4" --mask "$SRC/assets/sample/city_00000.png" --features pixels --context 4 \
  --out "$TMP/coco-masks" --coco "$TMP/coco.json" --soft "$TMP/soft"
check "propagate --coco --soft exits 0" test $? -eq 0
check "--soft: 40 gray 640x360 PNGs per object, frame 0 exactly 0/255" python3 - "$TMP/soft" <<'PY'
import os, struct, sys, zlib
root = sys.argv[1]
assert sorted(os.listdir(root)) == ["object_1", "object_2"], os.listdir(root)
for obj in ("object_1", "object_2"):
    names = sorted(os.listdir(os.path.join(root, obj)))
    assert len(names) == 40 and names[0] == "00000.png", (obj, len(names))
    for n in (names[0], names[20]):
        d = open(os.path.join(root, obj, n), "rb").read()
        w, h, depth, colour = struct.unpack(">IIBB", d[16:26])
        assert (w, h, depth, colour) == (640, 360, 8, 0), (obj, n, w, h, depth, colour)
    # Frame 0 is the anchor: its probabilities are 0 or 255 only (decode the IDAT rows, filter bytes skipped).
    d = open(os.path.join(root, obj, names[0]), "rb").read()
    pos, idat = 8, b""
    while pos < len(d):
        ln, kind = struct.unpack(">I4s", d[pos:pos + 8])
        if kind == b"IDAT": idat += d[pos + 8:pos + 8 + ln]
        pos += 12 + ln
    raw, prev, values = zlib.decompress(idat), bytearray(640), set()
    for r in range(360):   # undo the PNG row filters (None, Sub, Up, Average, Paeth), 1 byte per pixel
        f, row = raw[r * 641], bytearray(raw[r * 641 + 1:(r + 1) * 641])
        for x in range(640):
            a, b, c = (row[x - 1] if x else 0), prev[x], (prev[x - 1] if x else 0)
            p = a + b - c
            pr = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else (b if abs(p - b) <= abs(p - c) else c)
            row[x] = (row[x] + (0, a, b, (a + b) // 2, pr)[f]) & 255
        values.update(row)
        prev = row
    assert values <= {0, 255} and 255 in values, (obj, sorted(values)[:10])
PY
check "the COCO file holds 40 images, both objects, consistent RLE" python3 - "$TMP/coco.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert len(j["images"]) == 40 and [c["id"] for c in j["categories"]] == [1, 2], (len(j["images"]), j["categories"])
assert len(j["annotations"]) >= 1
for a in j["annotations"]:
    h, w = a["segmentation"]["size"]
    c = a["segmentation"]["counts"]
    assert (h, w) == (360, 640) and sum(c) == h * w and sum(c[1::2]) == a["area"] > 0, a["image_id"]
PY

# --size smaller than the video: the full-size first mask is resized (nearest) to the frames.
"$BIN" -q propagate --video "$SRC/assets/sample/city.mp4" --mask "$SRC/assets/sample/city_00000.png" --features pixels --size 320x180 \
  --out "$TMP/small" 2>"$TMP/small.err"
check "propagate --size 320x180 takes the 640x360 mask" test $? -eq 0 -a -f "$TMP/small/00039.png"
check "its masks are 320x180" python3 -c "import struct,sys; d=open('$TMP/small/00000.png','rb').read(24); sys.exit(0 if struct.unpack('>II', d[16:24]) == (320, 180) else 1)"

# OpenMP waits passively unless the user chose a policy (libgomp reads it before main: re-exec).
policy=$(env -u OMP_WAIT_POLICY "$BIN" -q bench affinity --channels 4 --height 8 --width 8 --radius 2 | grep omp_wait_policy)
check "OpenMP waits passively by default" test "$(echo "$policy" | tr -dc 'A-Z')" = "PASSIVE"
policy=$(OMP_WAIT_POLICY=ACTIVE "$BIN" -q bench affinity --channels 4 --height 8 --width 8 --radius 2 | grep omp_wait_policy)
check "a policy set by the user is kept" test "$(echo "$policy" | tr -dc 'A-Z')" = "ACTIVE"

# Pictures of features: a point's own cell is its best match on its frame (similarity 1).
"$BIN" -q inspect features --video "$SRC/assets/sample/city.mp4" --features pixels --frame 3 --other 9 --point 100,80 --out "$TMP/insp" > "$TMP/insp.json"
check "inspect features exits 0" test $? -eq 0
check "inspect features wrote its pictures" test -s "$TMP/insp/similarity_1.png" -a -s "$TMP/insp/pca.png" -a -s "$TMP/insp/correspondences.png"
best=$(grep -m1 '"similarity"' "$TMP/insp.json" | tr -dc '0-9.')
check "the query's best match on its own frame has similarity 1 ($best)" awk -v v="$best" 'BEGIN { exit !(v > 0.99999 && v < 1.00001) }'
# Point tracks: one CSV row per frame and point, a picture per frame.
"$BIN" -q inspect tracks --video "$SRC/assets/sample/city.mp4" --features pixels --points 330,120 500,200 --frames 6 --out "$TMP/tracks"
check "inspect tracks exits 0" test $? -eq 0
check "tracks.csv has 6 frames x 2 points" test "$(tail -n +2 "$TMP/tracks/tracks.csv" | wc -l)" -eq 12
check "a picture per frame and tracks.png" test "$(ls "$TMP/tracks/frames" | wc -l)" -eq 6 -a -s "$TMP/tracks/tracks.png"
check "frame 0 holds the points as given" grep -q '^0,00000,1,330.00,120.00,1.000$' "$TMP/tracks/tracks.csv"

# Synthetic objects for the cost-versus-objects benchmark: 5 boxes, all tracked.
objects=$("$BIN" -q bench propagate --video "$SRC/assets/sample/city.mp4" --features pixels --objects 5 --max-frames 3 | grep '"objects"' | tr -dc '0-9')
check "bench propagate --objects 5 propagates 5 objects" test "$objects" = "5"
# The JSON names the arithmetic and the device memory (null off CUDA); pixels are float32 whatever is asked.
bench_json=$("$BIN" -q bench propagate --video "$SRC/assets/sample/city.mp4" --features random --precision bf16 --max-frames 2)
check "bench propagate reports --precision bf16" grep -q '"precision": "bf16"' <<<"$bench_json"
check "bench propagate reports no device memory on the CPU" grep -q '"device_peak_mb": null' <<<"$bench_json"
pixels_json=$("$BIN" -q bench propagate --video "$SRC/assets/sample/city.mp4" --features pixels --precision bf16 --max-frames 2)
check "pixels features stay float32" grep -q '"precision": "fp32"' <<<"$pixels_json"

if [ -d "$DATA/labelme-street-2obj" ]; then
  "$BIN" -q propagate --davis "$DATA/labelme-street-2obj" --features pixels --context 4 --out "$TMP/davis"
  check "propagate --davis exits 0" test $? -eq 0
  "$BIN" -q eval --davis "$DATA/labelme-street-2obj" --results "$TMP/davis" --json "$TMP/scores.json" > "$TMP/eval.txt"
  check "eval exits 0" test $? -eq 0
  check "eval wrote the official CSVs" test -f "$TMP/davis/global_results.csv" -a -f "$TMP/davis/per-sequence_results.csv"
  check "two objects scored" test "$(grep -c '^street_truck_' "$TMP/davis/per-sequence_results.csv")" -eq 2
  # Propagation from a true first mask keeps J&F well above the empty prediction's 0.
  jf=$(sed -n 2p "$TMP/davis/global_results.csv" | cut -d, -f1)
  check "J&F $jf above 0.5" awk -v v="$jf" 'BEGIN { exit !(v > 0.5) }'
  # The bundled trained model (the default features) must beat the colour baseline here.
  if [ -f "$SRC/assets/models/default.ckpt" ]; then
    "$BIN" -q propagate --davis "$DATA/labelme-street-2obj" --out "$TMP/davis-default"
    check "propagate with the default model exits 0" test $? -eq 0
    "$BIN" -q eval --davis "$DATA/labelme-street-2obj" --results "$TMP/davis-default" > /dev/null
    jfd=$(sed -n 2p "$TMP/davis-default/global_results.csv" | cut -d, -f1)
    check "default model J&F $jfd above the pixels baseline $jf" awk -v a="$jfd" -v b="$jf" 'BEGIN { exit !(a > b) }'
  fi
else
  echo "skip DAVIS-layout part: no shared data at $DATA"
fi
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
