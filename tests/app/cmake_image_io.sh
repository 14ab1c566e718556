#!/bin/bash
# The LibTorch-only build with image I/O (CORRTRACK_WITH_VIDEO=OFF, CORRTRACK_WITH_IMAGE_IO=ON:
# libpng and libjpeg, no FFmpeg or OpenCV; what the GPU plans build) propagates and scores a
# DAVIS folder exactly as the full build does, and refuses a video file with one line naming it.
# usage: cmake_image_io.sh FULL_CORRTRACK PROJECT_SOURCE_DIR BUILD_FOLDER DATA_DIR
set -u
FULL=$1 SRC=$2 B=$3/image-io-tier DATA=$4
V=$DATA/davis2016-val-dev
[ -d "$V/JPEGImages/libby" ] || { echo "SKIP: $V absent"; exit 0; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cmake -S "$SRC" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCORRTRACK_WITH_VIDEO=OFF -DCORRTRACK_WITH_IMAGE_IO=ON \
  -DCORRTRACK_WITH_UI=OFF -DCORRTRACK_BUILD_TESTS=OFF > "$W/cmake.log" 2>&1 || { tail -20 "$W/cmake.log"; fail "configure"; }
cmake --build "$B" --target corrtrack > "$W/build.log" 2>&1 || { tail -30 "$W/build.log"; fail "build"; }
LITE=$B/app/corrtrack
# A small DAVIS root: libby's first 6 frames and masks.
mkdir -p "$W/davis/JPEGImages/libby" "$W/davis/Annotations/libby"
for f in $(ls "$V/JPEGImages/libby" | head -6); do cp "$V/JPEGImages/libby/$f" "$W/davis/JPEGImages/libby/"; done
for f in $(ls "$V/Annotations/libby" | head -6); do cp "$V/Annotations/libby/$f" "$W/davis/Annotations/libby/"; done
for tier in full lite; do
  [ $tier = full ] && C=$FULL || C=$LITE
  "$C" propagate --davis "$W/davis" --features pixels --out "$W/masks-$tier" > "$W/prop-$tier.log" 2>&1 || { tail -3 "$W/prop-$tier.log"; fail "$tier propagate"; }
  "$C" eval --davis "$W/davis" --results "$W/masks-$tier" --json "$W/eval-$tier.json" > /dev/null 2>&1 || fail "$tier eval"
done
[ "$(ls "$W/masks-lite/libby" | wc -l)" = 6 ] || fail "the image-I/O build wrote $(ls "$W/masks-lite/libby" | wc -l) masks, not 6"
cmp -s "$W/eval-full.json" "$W/eval-lite.json" || fail "J&F differs between the builds: $(head -c 300 "$W/eval-lite.json")"
for f in "$W"/masks-full/libby/*.png; do
  cmp -s "$f" "$W/masks-lite/libby/$(basename "$f")" || fail "mask $(basename "$f") differs between the builds"
done
# A video file: one line naming it, a non-zero exit, no output folder.
"$LITE" -q propagate --video "$SRC/assets/sample/city.mp4" --mask "$SRC/assets/sample/city_00000.png" --out "$W/none" > "$W/out.txt" 2> "$W/err.txt" &&
  fail "a video file was accepted by a build without FFmpeg"
[ "$(grep -c . "$W/err.txt")" = 1 ] && grep -q "^corrtrack: error: " "$W/err.txt" || { cat "$W/err.txt"; fail "not one error line"; }
grep -q "city.mp4" "$W/err.txt" && grep -q "without FFmpeg" "$W/err.txt" || { cat "$W/err.txt"; fail "the error does not name the file and the reason"; }
[ ! -e "$W/none" ] || fail "an output folder was left behind"
echo "OK: the image-I/O build's masks and J&F equal the full build's; video files refused"
