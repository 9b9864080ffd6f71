#!/usr/bin/env bash
# Fuzzes the served operator API from its own openapi.json with schemathesis: a
# `patchwave serve` on SQLite with the Azure stand-in behind it; no 5xx, every status and
# content type documented, responses match the schema, and requests that violate the schema
# are refused. Usage: .ci/schemathesis.sh PATH_TO_PATCHWAVE PATH_TO_ST
set -euo pipefail
bin="$1"
st="$2"
work="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
standin_port="$(free_port)"
serve_port="$(free_port)"
cleanup() { kill "${standin_pid:-}" "${serve_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
"$bin" standin --port "$standin_port" --handler "http://127.0.0.1:$serve_port" --devices 200 > "$work/standin.log" 2>&1 &
standin_pid=$!
PATCHWAVE_PORT="$serve_port" PATCHWAVE_STORE="sqlite:$work/st.db" PATCHWAVE_AUTH=open \
  PATCHWAVE_CREDENTIAL=none PATCHWAVE_ADU_ENDPOINT="http://127.0.0.1:$standin_port" PATCHWAVE_ADU_INSTANCE=demo \
  PATCHWAVE_ARM_ENDPOINT="http://127.0.0.1:$standin_port" PATCHWAVE_IOTHUB_HOST="http://127.0.0.1:$standin_port" \
  PATCHWAVE_EVENTS_FILE="$work/events.jsonl" RUST_LOG=error \
  "$bin" serve > "$work/serve.log" 2>&1 &
serve_pid=$!
"$st" run "http://127.0.0.1:$serve_port/api/openapi.json" \
  --wait-for-schema 30 \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection \
  --max-examples 100 --workers 1 --seed 7 --no-color
