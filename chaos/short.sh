#!/usr/bin/env bash
# The short chaos set that CI runs after `cargo test` (about 4 minutes on
# 2 cores): five real agents per scenario, faults injected,
# every check held or the script fails. Needs root (network namespaces, iptables),
# iproute2 and /bin/busybox. Uses the binaries `cargo test` built; set
# SHOAL_PROFILE=release to use a release build instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/${SHOAL_PROFILE:-debug}"
if [ ! -x "$bin/shoal-chaos" ] || [ ! -x "$bin/shoal" ]; then
  if [ "${SHOAL_PROFILE:-debug}" = release ]; then
    cargo build --release --bin shoal --bin shoal-chaos
  else
    cargo build --bin shoal --bin shoal-chaos
  fi
fi
for s in kill-leader partition-minority pause-node; do
  echo "chaos: $s"
  "$bin/shoal-chaos" run "chaos/scenarios/$s.toml" --shoal "$bin/shoal"
done
