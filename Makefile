# weir: convenience targets over CMake (build dir: build/).
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all build test demo demo-cluster bench clean format format-check asan tsan install

all: build

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -G "Unix Makefiles" $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test:
	scripts/deps.sh test
	$(MAKE) build
	cd $(BUILD) && ctest --output-on-failure -j 2

demo:
	scripts/deps.sh demo
	$(MAKE) build
	scripts/demo.sh $(BUILD)

# The cluster: 3 NATS servers, 2 ingest and 2 consumer nodes, PostgreSQL,
# a consumer and the stream leader killed under load (docs/AGGREGATOR.md).
demo-cluster:
	scripts/deps.sh demo
	$(MAKE) build
	scripts/demo-cluster.sh $(BUILD)

# Benchmarks build in their own directory, always Release.
BENCH_BUILD ?= build-release

bench:
	scripts/deps.sh bench
	$(MAKE) build BUILD=$(BENCH_BUILD) CMAKE_FLAGS="-DCMAKE_BUILD_TYPE=Release"
	bench/run.sh $(BENCH_BUILD) | tee $(BENCH_BUILD)/bench-table.txt
	bench/chart.sh $(BENCH_BUILD)/bench-table.txt $(BENCH_BUILD)/bench-ratios.svg
	@echo "chart: $(BENCH_BUILD)/bench-ratios.svg"
	bench/aggregator.sh $(BENCH_BUILD) | tee $(BENCH_BUILD)/bench-aggregator.txt
	bench/cluster.sh $(BENCH_BUILD) | tee $(BENCH_BUILD)/bench-cluster.txt

asan:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DWEIR_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug"

tsan:
	$(MAKE) test BUILD=build-tsan CMAKE_FLAGS="-DWEIR_SANITIZE=thread -DCMAKE_BUILD_TYPE=RelWithDebInfo"

install: build
	cmake --install $(BUILD)

FORMAT_FILES = include/*.h src/*.[ch] src/stream/*.[ch] tests/*.[ch] bench/*.[ch] examples/*.c \
	tools/weirctl/*.[ch] apps/aggregator/*.[ch] apps/aggregator/tests/*.c \
	apps/aggregator/fuzz/*.c fuzz/*.c

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

clean:
	rm -rf build build-asan build-tsan build-release build-valgrind build-fuzz
