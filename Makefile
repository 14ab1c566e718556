# CorrTrack: two commands do everything on a fresh Debian 12 machine (as root, or with sudo):
#   make demo   install missing packages, build, propagate the bundled sample
#   make test   install missing packages, build, run the default test suite
# GPU build: make demo TORCH_DIR=/path/to/libtorch (upstream LibTorch 2.x with CUDA) builds the
# whole project against it in build-torch/ (README "GPU build").
TORCH_DIR ?=
ifneq ($(TORCH_DIR),)
BUILD ?= build-torch
TORCH_FLAGS = -DCMAKE_PREFIX_PATH=$(abspath $(TORCH_DIR)) $(if $(shell command -v nvcc),-DCMAKE_CUDA_COMPILER=$(shell command -v nvcc))
endif
BUILD ?= build
JOBS  ?= $(shell nproc)
DATA  ?= $(abspath ../shared/data)
CMAKE_FLAGS ?=

.PHONY: all deps configure build demo test test-all bench clean

all: build

deps:
	./scripts/setup-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCORRTRACK_DATA_DIR=$(DATA) $(TORCH_FLAGS) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	./scripts/demo.sh $(BUILD)

# Default suite: everything but tests labelled slow. Data tests skip when ../shared/data is absent.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE slow

test-all: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) out
