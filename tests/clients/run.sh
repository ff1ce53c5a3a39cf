#!/usr/bin/env bash
# The API as a client developer meets it. Starts the given binary on a free port with a temp
# data dir, fetches the OpenAPI document it serves, validates it (openapi-spec-validator),
# generates a Python client (openapi-python-client) and a TypeScript one (openapi-typescript
# types + openapi-fetch, type-checked with tsc), and runs the same smoke flow with each against
# the server: items with dependencies, filtered lists, claim, complete with an acceptance
# report, move, reject, history, events since a seq, a 404's error body. Any failure, in
# validation, generation, type-checking or the flow, exits non-zero, so a change to the API
# that breaks a generated client fails CI.
#
# Usage: run.sh PATH_TO_BINARY. Tools are pinned in requirements.txt and package-lock.json and
# installed on first use into tests/clients/.venv and tests/clients/node_modules.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"

# Tools, installed idempotently: again only when their pins change.
venv="$here/.venv"
if ! cmp -s "$here/requirements.txt" "$venv/requirements.installed" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.installed"
fi
if ! cmp -s "$here/package-lock.json" "$here/node_modules/.package-lock.installed" 2>/dev/null; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
  cp "$here/package-lock.json" "$here/node_modules/.package-lock.installed"
fi
export PATH="$venv/bin:$here/node_modules/.bin:$PATH"

work="$(mktemp -d)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
# No agent runs on its own: the smoke flows claim and complete items themselves, as a
# remote worker would.
cat > "$work/config.toml" <<TOML
[server]
bind = "127.0.0.1:0"
data_dir = "$work/data"
[pool]
size = 0
auto_dispatch = false
TOML
RUST_LOG=warn "$bin" serve --config "$work/config.toml" > "$work/out" 2> "$work/server.log" &
pid=$!
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/^flightdeck listening on //p' "$work/out" | head -1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start:"; cat "$work/server.log"; exit 1; }
export FLIGHTDECK_URL="$url"
# The token the server generated (none when it runs open).
export FLIGHTDECK_TOKEN=""
[ -f "$work/data/token" ] && FLIGHTDECK_TOKEN="$(tr -d '[:space:]' < "$work/data/token")"
auth=()
[ -n "$FLIGHTDECK_TOKEN" ] && auth=(-H "Authorization: Bearer $FLIGHTDECK_TOKEN")

step() { echo "== $*"; }
step "fetching $url/api/openapi.json"
curl -fsS "${auth[@]}" "$url/api/openapi.json" -o "$work/openapi.json"

step "validating the document"
python3 -m openapi_spec_validator "$work/openapi.json"

step "generating the Python client"
(cd "$work" && openapi-python-client generate --path openapi.json --meta none \
  --output-path flightdeck_client --fail-on-warning)

step "running the Python smoke flow"
PYTHONPATH="$work" python3 "$here/smoke.py"

step "generating the TypeScript types"
mkdir "$work/ts"
openapi-typescript "$work/openapi.json" --output "$work/ts/schema.d.ts" --silent
cp "$here/smoke.ts" "$here/tsconfig.json" "$work/ts/"
ln -s "$here/node_modules" "$work/ts/node_modules"

step "type-checking and building the TypeScript smoke flow"
(cd "$work/ts" && tsc -p tsconfig.json)

step "running the TypeScript smoke flow"
node "$work/ts/out/smoke.js"

if grep -q "panicked" "$work/server.log"; then
  echo "the server panicked:"; grep -A5 panicked "$work/server.log"; exit 1
fi
kill -0 "$pid" 2>/dev/null || { echo "the server died during the smoke flows"; exit 1; }
echo "both generated clients ran the smoke flow against the real server"
