#!/usr/bin/env bash
# Idle-cluster check: three nodes listening on 0.0.0.0 with --advertise-addr,
# ten Services, then N seconds idle (default 600). Prints each node's Raft
# log index, fsync count and autopilot actions before and after: an idle
# cluster writes nothing. Usage: benches/idle.sh [SECONDS] [PATH-TO-SHOAL]
set -euo pipefail
idle="${1:-600}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
shoal="${2:-${CARGO_TARGET_DIR:-$repo/target}/debug/shoal}"
dir="$(mktemp -d /tmp/shoal-idle.XXXXXX)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
"$shoal" keygen > "$dir/key"
chmod 600 "$dir/key"
for i in 1 2 3; do
  join="127.0.0.1:2700$(( i == 1 ? 2 : 1 ))"
  "$shoal" agent --name idle$i --data-dir "$dir/n$i" --p2p-addr 0.0.0.0:2700$i \
    --advertise-addr 127.0.0.1:2700$i --api-addr 127.0.0.1:2710$i --dns-addr 127.0.0.1:2720$i \
    --runtime process --cluster-key-file "$dir/key" --bootstrap-expect 3 --join "$join" \
    >"$dir/n$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 1 60); do
  "$shoal" --addr http://127.0.0.1:27101 raft status 2>/dev/null | grep -q 'leader:  idle' && break
  sleep 1
done
for k in $(seq 1 10); do
  printf 'apiVersion: v1\nkind: Service\nmetadata: {name: svc%s}\nspec:\n  selector: {app: a%s}\n  ports: [{port: 80, targetPort: 8080}]\n' "$k" "$k" |
    "$shoal" --addr http://127.0.0.1:27101 apply -f - >/dev/null
done
sleep 20
snap() {
  for i in 1 2 3; do
    idx=$("$shoal" --addr http://127.0.0.1:2710$i raft status | awk '/^log:/ {print $3}')
    m=$(curl -s http://127.0.0.1:2710$i/metrics)
    syncs=$(echo "$m" | awk '/^shoal_store_log_syncs_total / {print $2}')
    actions=$(echo "$m" | awk '/^shoal_autopilot_actions_total/ {s += $2} END {print s + 0}')
    echo "idle$i log_index=$idx fsyncs=$syncs autopilot_actions=$actions"
  done
}
echo "after the Services:"; snap
sleep "$idle"
echo "after ${idle} s idle:"; snap
