#!/usr/bin/env bash
# Build and run the C core tests under the sanitizers.
#
#   csrc/tests/run.sh [--portable] [address|thread|none]...  (default: address thread)
#
# --portable compiles the core with PYCONC_PORTABLE defined: the pthread
# mutex/condvar parker that macOS and the BSDs use instead of the futex.
#
# Each csrc/tests/test_*.c is linked with every csrc/core/*.c; "address"
# means AddressSanitizer + UndefinedBehaviorSanitizer.  Exits non-zero on the
# first failure.  Prints a closing "N passed, N failed" line.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$here/bin"
mkdir -p "$out"
CC=${CC:-gcc}
defs=""
tag=""
if [ "${1:-}" = "--portable" ]; then
  defs="-DPYCONC_PORTABLE=1"
  tag="+portable"
  shift
fi
modes=("$@")
[ ${#modes[@]} -eq 0 ] && modes=(address thread)
passed=0
failed=0
for mode in "${modes[@]}"; do
  case "$mode" in
    address) flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" ;;
    thread)  flags="-fsanitize=thread" ;;
    none)    flags="" ;;
    *) echo "unknown mode $mode"; exit 2 ;;
  esac
  # the core is compiled once per mode (in parallel, one job per CPU) and
  # linked into every test: building it again for each test took 90% of
  # this script's time
  cflags="-std=c11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE $defs -pthread $flags -I$root/csrc/include"
  obj="$out/obj.$mode${tag}"
  rm -rf "$obj"
  mkdir -p "$obj"
  # shellcheck disable=SC2086
  if ! printf '%s\n' "$root"/csrc/core/*.c | xargs -P "$(nproc 2>/dev/null || echo 2)" -I{} \
      sh -c '$0 $1 -c "$2" -o "$3/$(basename "$2" .c).o"' "$CC" "$cflags" {} "$obj"; then
    echo "FAIL (build) core [$mode$tag]"; failed=$((failed+1)); continue
  fi
  for t in "$here"/test_*.c; do
    name=$(basename "$t" .c)
    exe="$out/$name.$mode${tag}"
    # shellcheck disable=SC2086
    if ! $CC $cflags -I"$here" "$t" "$obj"/*.o -o "$exe" -lm; then
      echo "FAIL (build) $name [$mode$tag]"; failed=$((failed+1)); continue
    fi
    start=$(date +%s)
    if TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
       ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" \
       UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" timeout 600 "$exe"; then
      printf 'ok   %-28s [%s] %ss\n' "$name" "$mode$tag" "$(( $(date +%s) - start ))"
      passed=$((passed+1))
    else
      echo "FAIL $name [$mode$tag]"; failed=$((failed+1))
    fi
  done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
