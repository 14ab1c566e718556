# CorrTrack: two commands do everything on a fresh Debian 12 machine (as root, or with sudo):
#   make demo   install missing packages, build, propagate the bundled sample
#   make test   install missing packages, build, run the default test suite
BUILD ?= build
JOBS  ?= $(shell nproc)
DATA  ?= $(abspath ../shared/data)
CMAKE_FLAGS ?=

.PHONY: all deps configure build demo test test-all bench clean

all: build

deps:
	./scripts/setup-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCORRTRACK_DATA_DIR=$(DATA) $(CMAKE_FLAGS)

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
