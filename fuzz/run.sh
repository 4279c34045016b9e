#!/bin/sh
# fuzz/run.sh SECONDS: builds the fuzz targets with clang (libFuzzer, ASan,
# UBSan; libweir itself instrumented for coverage) in build-fuzz/, then runs
# each target for SECONDS (default 60) over its seed corpus. New inputs go
# to fuzz/corpus-tmp/NAME (not committed); a crash leaves crash-* files in
# build-fuzz/ and makes the script exit 1.
set -eu
secs=${1:-60}
cd "$(dirname "$0")/.."
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DWEIR_FUZZ=ON \
  -DWEIR_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link" >/dev/null
targets="console_parse weirctl_args pid_parse web_route"
for t in $targets; do
  cmake --build build-fuzz -j2 --target "fuzz_$t" >/dev/null
done
status=0
for t in $targets; do
  mkdir -p "fuzz/corpus-tmp/$t"
  echo "== fuzz_$t for ${secs}s"
  if ! (cd build-fuzz && "./fuzz/fuzz_$t" -max_total_time="$secs" \
        -max_len=2048 -print_final_stats=1 \
        "../fuzz/corpus-tmp/$t" "../fuzz/corpus/$t"); then
    echo "fuzz_$t: FAILED (see crash-* in build-fuzz/)"
    status=1
  fi
done
exit $status
