#!/usr/bin/env bash
# The OpenAPI contract checked by independent tools: the committed document must
# pass openapi-spec-validator, and schemathesis, run against a live server on
# PostgreSQL and Redis as every kind of principal (the operator, a person with
# each tenant role, a device agent, a webservice credential, and nobody), must
# find no server error, no answer that contradicts the document, and no
# malformed request that is accepted.
#
# Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust authentication),
# Redis at 127.0.0.1:6379, Rust and python3 with pip. Tunables:
#   CONTRACT_MAX_EXAMPLES  test cases per operation and phase (default 5)
#   CONTRACT_SEED          schemathesis seed, to replay a run
#   CONTRACT_VENV          where the Python tools are installed (default target/contract-venv)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
START=$SECONDS

MAX_EXAMPLES=${CONTRACT_MAX_EXAMPLES:-5}
SEED=${CONTRACT_SEED:-$RANDOM$RANDOM}
VENV=${CONTRACT_VENV:-$ROOT/target/contract-venv}
PG_ADMIN=postgres://postgres@127.0.0.1:5432/postgres
# A Redis database of its own: failed logins sent on purpose throttle the
# operator's credential, which must not spill into other test runs.
REDIS_DB=13
REDIS_URL=redis://127.0.0.1:6379/$REDIS_DB

# The Python tools, pinned.
REQUIREMENTS=$ROOT/tests/contract/requirements.txt
if ! cmp -s "$REQUIREMENTS" "$VENV/.requirements" 2>/dev/null; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$VENV/.requirements"
fi
PY=$VENV/bin/python

echo "== openapi-spec-validator openapi/openapi.json"
"$VENV/bin/openapi-spec-validator" openapi/openapi.json

echo "== building countersign"
cargo build --quiet --bin countersign
BIN=$ROOT/target/debug/countersign

WORK=$(mktemp -d)
DB=cs_test_contract_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
SERVER_PID=
cleanup() {
  local status=$?
  if [[ -n $SERVER_PID ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  # Dropping waits for a checkpoint; if that is slow, CI's cleanup of cs_test_* drops it later.
  timeout 30 psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  echo "contract run took $((SECONDS - START)) s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql "$PG_ADMIN" -qc "CREATE DATABASE \"$DB\""
"$PY" "$ROOT/tests/contract/redis_flush.py" 127.0.0.1 6379 "$REDIS_DB"

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
OPERATOR_KEY=contract-operator-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
"$PY" - "$WORK/history-signing-key.pem" <<'EOF'
# An Ed25519 key as PKCS#8 PEM: a fixed DER prefix and 32 random bytes.
import base64, os, sys
der = bytes.fromhex("302e020100300506032b657004220420") + os.urandom(32)
pem = "-----BEGIN PRIVATE KEY-----\n" + base64.b64encode(der).decode() + "\n-----END PRIVATE KEY-----\n"
with open(sys.argv[1], "w") as f:
    f.write(pem)
EOF

server_env=(
  env -u DATABASE_URL -u REDIS_URL -u SMTP_URL
  COUNTERSIGN_LISTEN="127.0.0.1:$PORT"
  COUNTERSIGN_METRICS_LISTEN="127.0.0.1:0"
  COUNTERSIGN_MIGRATION_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
  COUNTERSIGN_DATABASE_URL="postgres://countersign_test_api@127.0.0.1:5432/$DB"
  COUNTERSIGN_WORKER_DATABASE_URL="postgres://countersign_test_worker@127.0.0.1:5432/$DB"
  COUNTERSIGN_REDIS_URL="$REDIS_URL"
  COUNTERSIGN_OPERATOR_KEY="$OPERATOR_KEY"
  COUNTERSIGN_JWT_SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
  COUNTERSIGN_HISTORY_SIGNING_KEY_FILE="$WORK/history-signing-key.pem"
  COUNTERSIGN_MAIL_DIR="$WORK/mail"
  COUNTERSIGN_DEMO=false
  RUST_LOG="${RUST_LOG:-warn}"
)
echo "== migrating $DB"
"${server_env[@]}" "$BIN" migrate >/dev/null
# The owner migrates; the API connects as a role bound by row-level
# security, its background work as one that spans tenants.
psql "$PG_ADMIN" -q -f "$ROOT/tests/sql/login-roles.sql" >/dev/null
echo "== starting countersign on $BASE"
"${server_env[@]}" "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
ready() { "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$BASE/readyz" 2>/dev/null; }
for _ in $(seq 1 100); do
  ready && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.2
done
ready || { echo "countersign did not become ready" >&2; cat "$WORK/server.log" >&2; exit 1; }

echo "== provisioning a tenant and one principal of every kind"
"$PY" "$ROOT/tests/contract/provision.py" "$BASE" "$OPERATOR_KEY" "$WORK/principals"

REPORTS=$ROOT/target/contract-report
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
failed=()
run_schemathesis() {
  local principal=$1
  shift
  echo "== schemathesis as $principal"
  # In the scratch folder: schemathesis keeps a cache of failures in the working directory.
  # One worker: with threads, Hypothesis's ast.parse can trip a CPython 3.11
  # bug ("AST constructor recursion depth mismatch"), an error of the tool.
  if ! (cd "$WORK" && "$VENV/bin/schemathesis" "$@" run "$ROOT/openapi/openapi.json" \
    --url "$BASE" \
    --max-examples "$MAX_EXAMPLES" \
    --seed "$SEED" \
    --workers 1 \
    --no-color \
    --generation-database none \
    --report junit --report-junit-path "$REPORTS/$principal.xml" \
    "${PRINCIPAL_ARGS[@]}" </dev/null); then
    failed+=("$principal")
  fi
}

# Logins are tried last and without credentials: fuzzing them throttles the
# operator's credential (SPEC: five failed logins per credential), which would
# keep the operator from logging in again.
while read -r principal; do
  PRINCIPAL_ARGS=(--exclude-path /v1/auth/token)
  run_schemathesis "$principal" --config-file "$WORK/principals/$principal.toml"
done <"$WORK/principals/principals"
PRINCIPAL_ARGS=()
run_schemathesis anonymous --config-file "$WORK/principals/anonymous.toml"

if ((${#failed[@]})); then
  echo "schemathesis found failures as: ${failed[*]} (seed $SEED; server log follows)" >&2
  grep -E '"level":"(ERROR|WARN)"|ERROR|WARN' "$WORK/server.log" | tail -50 | cut -c1-2000 >&2 || true
  exit 1
fi
echo "contract holds for every principal (seed $SEED)"
