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
  FLIGHTDECK_BIN="$PWD/target/debug/flightdeck" node --test tests/browser/
fi

say "benchmark suite, quick mode (keeps bench/ working; timings are not asserted)"
bash bench/run --quick
