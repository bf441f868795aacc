#!/usr/bin/env bash
# Build and run the C core tests under the sanitizers.
#
#   csrc/tests/run.sh [address|thread|none]...     (default: address thread)
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
  for t in "$here"/test_*.c; do
    name=$(basename "$t" .c)
    exe="$out/$name.$mode"
    if ! $CC -std=c11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -pthread $flags \
        -I"$root/csrc/include" -I"$here" "$t" "$root"/csrc/core/*.c -o "$exe" -lm; then
      echo "FAIL (build) $name [$mode]"; failed=$((failed+1)); continue
    fi
    start=$(date +%s)
    if TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
       ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" \
       UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" timeout 600 "$exe"; then
      printf 'ok   %-28s [%s] %ss\n' "$name" "$mode" "$(( $(date +%s) - start ))"
      passed=$((passed+1))
    else
      echo "FAIL $name [$mode]"; failed=$((failed+1))
    fi
  done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
