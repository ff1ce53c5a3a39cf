#!/usr/bin/env bash
# Runs every test flightdeck has, on a fresh machine too: installs what the browser tests need
# (Debian's chromium, playwright-core from npm, schemathesis from PyPI) if it is missing, builds
# the test binary once, then runs the Rust tests (unit + integration, against the real binary), fuzzes the API
# against its OpenAPI document, runs the browser tests, and runs the benchmark suite in its
# quick mode (PostgreSQL from Debian's packages) so it never rots.
#
# It fails, rather than passing quietly, when a suite proves less than it seems to: a Rust test
# binary that failed or printed no `test result` line, a browser suite that is missing or ran
# no test, or schemathesis sending fewer requests than it promises (tests/schemathesis/run.sh).
# It ends with one line: "flightdeck: N passed, 0 failed".
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
fail() { printf '\nflightdeck: %s\n' "$*" >&2; exit 1; }

say "formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

say "Rust tests (unit and integration)"
mkdir -p target
cargo test --all-targets 2>&1 | tee target/rust-tests.log
# Every test binary cargo ran must have reported, and reported no failure.
binaries=$(grep -cE '^ +Running ' target/rust-tests.log || true)
results=$(grep -cE '^test result: ' target/rust-tests.log || true)
[ "$binaries" -gt 0 ] || fail "cargo test ran no test binary"
[ "$results" -eq "$binaries" ] ||
  fail "cargo test ran $binaries test binaries but only $results reported a test result"
! grep -qE '^test result: FAILED' target/rust-tests.log || fail "a Rust test binary reported failures"
passed=$(grep -hoE '^test result: ok\. [0-9]+ passed' target/rust-tests.log | awk '{n += $4} END {print n + 0}')
[ "$passed" -gt 0 ] || fail "no Rust test passed"

say "API fuzzing (schemathesis against /api/openapi.json)"
bash tests/schemathesis/run.sh "$PWD/target/debug/flightdeck"

say "browser tests"
shopt -s nullglob
browser_files=(tests/browser/*.test.mjs)
shopt -u nullglob
[ "${#browser_files[@]}" -gt 0 ] || fail "no browser tests: tests/browser/*.test.mjs is missing"
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm install --no-audit --no-fund --silent)
fi
# The TAP reporter's own summary ("# tests N", "# pass N", "# fail N") is what gets counted.
FLIGHTDECK_BIN="$PWD/target/debug/flightdeck" node --test --test-reporter=tap "${browser_files[@]}" 2>&1 |
  tee target/browser-tests.log
browser_count() { awk -v key="$1" '$1 == "#" && $2 == key && $3 ~ /^[0-9]+$/ {n = $3; seen = 1} END {print seen ? n : -1}' target/browser-tests.log; }
browser_tests=$(browser_count tests)
browser=$(browser_count pass)
browser_failed=$(browser_count fail)
[ "$browser_tests" -ge 0 ] && [ "$browser" -ge 0 ] && [ "$browser_failed" -ge 0 ] ||
  fail "the browser tests printed no summary"
[ "$browser_tests" -gt 0 ] || fail "the browser suite ran no test"
[ "$browser_failed" -eq 0 ] || fail "$browser_failed browser tests failed"
[ "$browser" -gt 0 ] || fail "no browser test passed"

say "benchmark suite, quick mode (keeps bench/ working; timings are not asserted)"
bash bench/run --quick

# One closing line for the whole run: Rust tests plus browser tests.
echo
echo "flightdeck: $((passed + browser)) passed, 0 failed"
