#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test suite:
#   - unit tests (Criterion) under ASan+UBSan (build-asan/)
#   - unit and integration tests on the regular build (build/)
# Ends with one line "N passed, N failed" (individual test cases).
set -uo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh || exit 1

werror=-Dwerror=true
echo "== build (warnings are errors)"
deploy/build.sh build $werror || { echo "0 passed, 1 failed"; exit 1; }
echo "== build with ASan+UBSan"
deploy/build.sh build-asan $werror -Db_sanitize=address,undefined -Db_lundef=false || { echo "0 passed, 1 failed"; exit 1; }

status=0
echo "== unit tests under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  LSAN_OPTIONS=suppressions=$PWD/deploy/lsan.supp:print_suppressions=0 \
  meson test -C build-asan --suite unit --print-errorlogs --num-processes 2 || status=1
echo "== all suites"
meson test -C build --print-errorlogs --num-processes 2 || status=1

python3 deploy/test_summary.py build-asan/meson-logs/testlog.json build/meson-logs/testlog.json
summary_status=$?
[ $status -eq 0 ] && [ $summary_status -eq 0 ]
