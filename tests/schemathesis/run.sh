#!/usr/bin/env bash
# Fuzzes the running API against its own OpenAPI document with schemathesis: every check,
# all phases (examples, coverage, fuzzing, stateful), at least 1,000 generated requests,
# counted from schemathesis's own HAR report of every request it sent. Fails on any 5xx, any
# response that breaks the schema, a server that panicked or died, or fewer requests than
# promised. Usage: run.sh PATH_TO_BINARY
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$1"
min_requests=1000
if ! command -v schemathesis >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4.3,<5'
fi
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
# No token configured: the server generates one into data/token, as the shipped config does.
cat > "$work/config.toml" <<TOML
[server]
bind = "127.0.0.1:0"
data_dir = "$work/data"
[pool]
size = 1
[agent]
preset = "lines"
command = ["/bin/sh", "-c", "echo working"]
TOML
RUST_LOG=warn "$bin" serve --config "$work/config.toml" > "$work/out" 2> "$work/server.log" &
pid=$!
for _ in $(seq 1 100); do
  url=$(sed -n 's/^flightdeck listening on //p' "$work/out" | head -1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "server did not start"; cat "$work/server.log"; exit 1; }
token="$(cat "$work/data/token")"
cd "$here"
status=0
schemathesis run "$url/api/openapi.json" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples 100 \
  --workers 2 \
  --header "Authorization: Bearer $token" \
  --header "X-Flightdeck: 1" \
  --seed 20261126 \
  --report har --report-har-path "$work/requests.har" \
  --continue-on-failure || status=$?
requests=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["log"]["entries"]))' \
  "$work/requests.har" 2>/dev/null || echo 0)
echo "schemathesis sent $requests requests (at least $min_requests promised)"
if [ "$requests" -lt "$min_requests" ]; then
  echo "schemathesis sent fewer than $min_requests requests: the fuzzing proved less than it promises"
  status=1
fi
if grep -q "panicked" "$work/server.log"; then
  echo "the server panicked:"; grep -A5 panicked "$work/server.log"; status=1
fi
kill -0 "$pid" 2>/dev/null || { echo "the server died during fuzzing"; status=1; }
exit $status
