#!/bin/sh
# apps/aggregator/fuzz/run.sh SECONDS: builds the aggregator's libFuzzer
# targets with clang (libFuzzer + ASan, the parsers instrumented for
# coverage) in build-fuzz-agg/, then runs each for SECONDS (default 60)
# over its committed seed corpus:
#   agg_event  one JSON event (POST /track, each batch line)
#   agg_batch  an NDJSON batch body: the line splitter and every line's parse
#   agg_args   the command line
#   agg_unpack a message read from the stream (consume)
# New inputs go to apps/aggregator/fuzz/corpus-tmp/NAME (not committed); a
# crash leaves crash-* files in build-fuzz-agg/ and makes the script exit 1.
# For CI: `apps/aggregator/fuzz/run.sh 60` from anywhere in the repository.
set -eu
secs=${1:-60}
cd "$(dirname "$0")/../../.."
cmake -S . -B build-fuzz-agg -DCMAKE_C_COMPILER=clang -DWEIR_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets="agg_event agg_batch agg_args agg_unpack"
for t in $targets; do
  cmake --build build-fuzz-agg -j2 --target "fuzz_$t" >/dev/null
done
status=0
for t in $targets; do
  mkdir -p "apps/aggregator/fuzz/corpus-tmp/$t"
  echo "== fuzz_$t for ${secs}s"
  if ! (cd build-fuzz-agg && "./apps/aggregator/fuzz_$t" \
        -max_total_time="$secs" -max_len=4096 -print_final_stats=1 \
        "../apps/aggregator/fuzz/corpus-tmp/$t" \
        "../apps/aggregator/fuzz/corpus/$t"); then
    echo "fuzz_$t: FAILED (see crash-* in build-fuzz-agg/)"
    status=1
  fi
done
exit $status
