#!/bin/bash
# The CMake configuration copes with a LibTorch that bundles its own fmt (upstream LibTorch 2.x):
# a stand-in LibTorch (the real one plus an include folder whose fmt headers stop the compiler)
# must configure and compile a source that includes torch and spdlog, and without the automatic
# handling (an explicit, empty CORRTRACK_INCLUDE_FIRST) the same compile must fail.
# usage: cmake_bundled_fmt.sh PROJECT_SOURCE_DIR TORCH_DIR
set -u
SRC=$1
TORCH_DIR=$2
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/torch" "$W/bundled/include/fmt" "$W/empty"
for f in core.h format.h; do echo '#error "the bundled fmt shadowed the system fmt"' > "$W/bundled/include/fmt/$f"; done
cat > "$W/torch/TorchConfig.cmake" <<CFG
include("$TORCH_DIR/TorchConfig.cmake")
list(APPEND TORCH_INCLUDE_DIRS "$W/bundled/include")
set_property(TARGET torch APPEND PROPERTY INTERFACE_INCLUDE_DIRECTORIES "$W/bundled/include")
CFG
OBJ=core/base/CMakeFiles/corrtrack_base.dir/src/util.cpp.o
configure() {  # build folder, extra flags
  cmake -S "$SRC" -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$W/torch" -DCORRTRACK_WITH_VIDEO=OFF \
    -DCORRTRACK_WITH_UI=OFF -DCORRTRACK_BUILD_TESTS=OFF -DCORRTRACK_NO_PCH=ON "${@:2}" > "$1.log" 2>&1
}
fail() { echo "FAIL: $*"; exit 1; }
configure "$W/auto" || { cat "$W/auto.log"; fail "configure with a bundled fmt"; }
grep -q "LibTorch bundles its own fmt" "$W/auto.log" || fail "the bundled fmt was not detected"
[ "$(readlink "$W/auto/include-first/fmt")" != "" ] || fail "no link to the system fmt"
cmake --build "$W/auto" --target "$OBJ" > "$W/auto-build.log" 2>&1 || { tail -20 "$W/auto-build.log"; fail "compile with a bundled fmt"; }
configure "$W/off" -DCORRTRACK_INCLUDE_FIRST="$W/empty" || fail "configure with CORRTRACK_INCLUDE_FIRST"
if cmake --build "$W/off" --target "$OBJ" > "$W/off-build.log" 2>&1; then fail "the stand-in's fmt was never seen: the check proves nothing"; fi
grep -q "shadowed the system fmt" "$W/off-build.log" || { tail -20 "$W/off-build.log"; fail "the compile failed for another reason"; }
echo "OK: bundled fmt detected and kept behind the system fmt"
