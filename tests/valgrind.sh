#!/bin/sh
# valgrind.sh: runs the fast part of the suite under valgrind's memcheck.
#
#   tests/valgrind.sh BUILD_DIR [TEST...]
#
# BUILD_DIR is a build without sanitizers (valgrind and ASan do not mix);
# if it holds no build yet, it is configured with -DCMAKE_BUILD_TYPE=Debug.
# The script builds only the binaries it runs (so an unrelated target that
# does not build cannot stop it), runs each under
#
#   valgrind --error-exitcode=1 --leak-check=full
#            --errors-for-leak-kinds=definite,indirect
#
# with WEIR_STRESS_SCALE small (testlib scales stress loops by it), prints
# one line per binary and a summary, and exits non-zero if any binary had a
# memcheck error, a definite or indirect leak, failed, or timed out. Each
# binary's full valgrind log is kept in BUILD_DIR/valgrind/NAME.log.
#
# Memcheck finds what ASan cannot see in the same run: reads of
# uninitialised memory, and leaks in a binary built exactly as users build
# it (no sanitizer runtime, no instrumentation). It is slow and serialises
# threads, so the stress tests and the fault-injection test stay out; the
# ASan, UBSan and TSan builds cover those.
#
# Environment: VALGRIND (default valgrind), VG_TIMEOUT (seconds per binary,
# default 600), WEIR_STRESS_SCALE (default 0.1), JOBS (build parallelism).
set -u

if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR [TEST...]" >&2
  exit 2
fi
BUILD=$1
shift
SRC=$(cd "$(dirname "$0")/.." && pwd)
VALGRIND=${VALGRIND:-valgrind}
VG_TIMEOUT=${VG_TIMEOUT:-600}
JOBS=${JOBS:-2}
export WEIR_STRESS_SCALE=${WEIR_STRESS_SCALE:-0.1}

if ! command -v "$VALGRIND" >/dev/null 2>&1; then
  echo "valgrind.sh: $VALGRIND not found" >&2
  exit 2
fi

DEFAULT_TESTS="test_cast test_call test_links test_timer test_sup
test_partsup test_registry test_spawn test_console"

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug >/dev/null || exit 2
fi
BUILD=$(cd "$BUILD" && pwd)
if grep -Eq '^WEIR_SANITIZE:STRING=.+' "$BUILD/CMakeCache.txt"; then
  echo "valgrind.sh: $BUILD is built with a sanitizer; use a plain build" >&2
  exit 2
fi

if [ $# -gt 0 ]; then
  TESTS=$*
else
  # The examples: every examples/*.c becomes example_NAME.
  EXAMPLES=""
  for f in "$SRC"/examples/*.c; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .c)
    EXAMPLES="$EXAMPLES example_$n"
  done
  TESTS="$DEFAULT_TESTS $EXAMPLES"
fi

# Build what will run, one target at a time: a target that fails to build is
# reported as a failure of that binary, not of the whole script.
BUILD_FAILED=""
for t in $TESTS; do
  if ! cmake --build "$BUILD" -j "$JOBS" --target "$t" >"$BUILD/.vg-build.log" 2>&1; then
    BUILD_FAILED="$BUILD_FAILED $t"
    tail -20 "$BUILD/.vg-build.log" >&2
  fi
done

mkdir -p "$BUILD/valgrind"
pass=0
fail=0
failed=""
start=$(date +%s)
for t in $TESTS; do
  case " $BUILD_FAILED " in
  *" $t "*)
    printf '%-28s BUILD FAILED\n' "$t"
    fail=$((fail + 1))
    failed="$failed $t"
    continue
    ;;
  esac
  bin="$BUILD/$t"
  log="$BUILD/valgrind/$t.log"
  if [ ! -x "$bin" ]; then
    printf '%-28s MISSING (%s)\n' "$t" "$bin"
    fail=$((fail + 1))
    failed="$failed $t"
    continue
  fi
  t0=$(date +%s)
  # Run from the build dir, as ctest does.
  (cd "$BUILD" && timeout "$VG_TIMEOUT" "$VALGRIND" --error-exitcode=1 \
    --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --show-leak-kinds=definite,indirect --num-callers=30 --fair-sched=yes \
    --log-file="$log" "./$t" >"$log.out" 2>&1)
  rc=$?
  dt=$(($(date +%s) - t0))
  errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -1)
  definite=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1)
  indirect=$(sed -n 's/.*indirectly lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1)
  detail="errors=${errs:-?} definite=${definite:-0} indirect=${indirect:-0} ${dt}s"
  if [ $rc -eq 0 ]; then
    printf '%-28s ok    %s\n' "$t" "$detail"
    pass=$((pass + 1))
  else
    why="exit $rc"
    [ $rc -eq 124 ] && why="TIMEOUT after ${VG_TIMEOUT}s"
    printf '%-28s FAIL  %s (%s; log: %s)\n' "$t" "$detail" "$why" "$log"
    # The first error and the leak records, enough to start from.
    grep -E -A12 '^==[0-9]+== (Invalid|Conditional|Use of|Syscall param|Mismatched|Source and|Argument)|definitely lost in|indirectly lost in' "$log" | head -60
    tail -5 "$log.out"
    fail=$((fail + 1))
    failed="$failed $t"
  fi
done
total=$(($(date +%s) - start))
echo "valgrind: $pass passed, $fail failed, ${total}s (WEIR_STRESS_SCALE=$WEIR_STRESS_SCALE)"
if [ $fail -ne 0 ]; then
  echo "valgrind: failed:$failed"
  exit 1
fi
exit 0
