#!/usr/bin/env bash
# Runs test binaries that open RocksDB stores in process many times in a row
# and fails on the first run that does not exit 0: a crash while the process
# exits (SIGABRT "pthread lock: Invalid argument", heap corruption, SIGSEGV)
# shows up after every test has passed, so only repetition catches it.
#
#   tests/exit-loop.sh [RUNS] [TARGET...]
#
# RUNS defaults to 50. TARGETs are `lib` (the library's unit tests, the
# default) or integration test names such as `t15_store_shutdown`.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(lib)

args=()
for t in "${targets[@]}"; do
  if [[ $t == lib ]]; then args+=(--lib); else args+=(--test "$t"); fi
done
mapfile -t bins < <(cargo test "${args[@]}" --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"])
')
((${#bins[@]})) || { echo "exit-loop: no test binary built for: ${targets[*]}" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for bin in "${bins[@]}"; do
  name=$(basename "$bin")
  started=$SECONDS
  for i in $(seq 1 "$runs"); do
    set +e
    "$bin" --quiet >"$log" 2>&1
    code=$?
    set -e
    if ((code != 0)); then
      echo "exit-loop: $name run $i of $runs exited $code$( ((code > 128)) && echo " (signal $((code - 128)))")" >&2
      tail -40 "$log" >&2
      exit 1
    fi
  done
  echo "exit-loop: $name exited 0 in all $runs runs ($((SECONDS - started)) s)"
done
