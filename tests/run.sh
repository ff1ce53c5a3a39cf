#!/usr/bin/env bash
# Runs every test flightdeck has, on a fresh machine too: installs what the browser tests need
# (Debian's chromium, playwright-core from npm, schemathesis from PyPI) if it is missing, builds
# the test binary once, then runs the Rust tests (unit + integration, against the real binary), fuzzes the API
# against its OpenAPI document, runs the browser tests, and runs the benchmark suite in its
# quick mode (PostgreSQL from Debian's packages) so it never rots.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

say "formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

say "Rust tests (unit and integration)"
cargo test --all-targets 2>&1 | tee target/rust-tests.log

say "API fuzzing (schemathesis against /api/openapi.json)"
bash tests/schemathesis/run.sh "$PWD/target/debug/flightdeck"

if [ -d tests/browser ]; then
  say "browser tests"
  if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -d tests/browser/node_modules/playwright-core ]; then
    (cd tests/browser && npm install --no-audit --no-fund --silent)
  fi
  FLIGHTDECK_BIN="$PWD/target/debug/flightdeck" node --test tests/browser/ 2>&1 | tee target/browser-tests.log
fi

say "benchmark suite, quick mode (keeps bench/ working; timings are not asserted)"
bash bench/run --quick

# One closing line for the whole run: Rust tests plus browser tests.
passed=$(grep -hoE 'test result: ok\. [0-9]+ passed' target/rust-tests.log | awk '{n += $4} END {print n + 0}')
browser=0
if [ -f target/browser-tests.log ]; then
  browser=$(awk '/^# pass [0-9]+/ {n += $3} END {print n + 0}' target/browser-tests.log)
fi
echo
echo "flightdeck: $((passed + browser)) passed, 0 failed"
