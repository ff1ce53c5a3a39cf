#!/usr/bin/env bash
# Runs every test flightdeck has, on a fresh machine too: installs what the other suites need
# (Debian's chromium, playwright-core and the real agent CLIs from npm, schemathesis from PyPI,
# the generated clients' tools) in the background while it builds every test target once, then runs the Rust tests
# (unit + integration, against the real binary) while schemathesis fuzzes the API against its
# OpenAPI document and generated Python and TypeScript clients run against the server, then
# the browser tests, then the benchmark suite in its quick mode (PostgreSQL from Debian's
# packages) so it never rots.
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

mkdir -p target
# What the other suites need comes from the network (Debian, npm, PyPI): fetch it while the
# tests build and run, not after.
say "installing test tools in the background (log: target/installs.log)"
(
  set -e
  if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -d tests/browser/node_modules/playwright-core ]; then
    (cd tests/browser && npm ci --no-audit --no-fund --silent)
  fi
  # The real agent CLIs (claude, codex, gemini) the presets are tested with, pinned.
  if ! cmp -s tests/agent-clis/package-lock.json tests/agent-clis/node_modules/.package-lock.installed 2>/dev/null; then
    (cd tests/agent-clis && npm ci --no-audit --no-fund --silent)
    cp tests/agent-clis/package-lock.json tests/agent-clis/node_modules/.package-lock.installed
  fi
  # pytest: one of the verify commands tests/verify_tools.rs runs under the sandbox.
  if ! command -v pytest >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check 'pytest>=8,<9'
  fi
  if ! command -v schemathesis >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4.3,<5'
  fi
) > target/installs.log 2>&1 &
installs=$!

say "building every test target once"
cargo test --all-targets --no-run

# The API suites need only the built binary: they run beside the Rust tests.
wait "$installs" || { cat target/installs.log; fail "installing the test tools failed"; }
say "API fuzzing and generated clients, in the background (log: target/api-suites.log)"
(
  set -e
  echo "== API fuzzing (schemathesis against /api/openapi.json)"
  bash tests/schemathesis/run.sh "$PWD/target/debug/flightdeck"
  echo "== generated clients (tests/clients)"
  bash tests/clients/run.sh "$PWD/target/debug/flightdeck"
) > target/api-suites.log 2>&1 &
api_suites=$!

say "Rust tests (unit and integration)"
cargo test --all-targets --no-fail-fast 2>&1 | tee target/rust-tests.log || true
# Every test binary cargo ran must have reported, and reported no failure.
binaries=$(grep -cE '^ +Running ' target/rust-tests.log || true)
results=$(grep -cE '^test result: ' target/rust-tests.log || true)
[ "$binaries" -gt 0 ] || fail "cargo test ran no test binary"
[ "$results" -eq "$binaries" ] ||
  fail "cargo test ran $binaries test binaries but only $results reported a test result"
! grep -qE '^test result: FAILED' target/rust-tests.log || fail "a Rust test binary reported failures"
passed=$(grep -hoE '^test result: ok\. [0-9]+ passed' target/rust-tests.log | awk '{n += $4} END {print n + 0}')
[ "$passed" -gt 0 ] || fail "no Rust test passed"

say "API fuzzing and generated clients: waiting for them"
if ! wait "$api_suites"; then
  cat target/api-suites.log
  fail "the API fuzzing or the generated clients failed (above)"
fi
cat target/api-suites.log

say "browser tests"
shopt -s nullglob
browser_files=(tests/browser/*.test.mjs)
shopt -u nullglob
[ "${#browser_files[@]}" -gt 0 ] || fail "no browser tests: tests/browser/*.test.mjs is missing"
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
