#!/usr/bin/env bash
# Start a three-node JetStream cluster on this machine (client ports 4222-4224) with the
# nats-server from the project's .venv. Ctrl-C stops it. Data goes to ./var/nats-cluster/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
server="$root/.venv/bin/nats-server"
pids=()
for i in 1 2 3; do
  NATS_NAME="n$i" NATS_HOST=127.0.0.1 NATS_PORT=$((4221 + i)) NATS_CLUSTER_PORT=$((6221 + i)) \
  NATS_STORE="$root/var/nats-cluster/n$i" \
  NATS_ROUTE_1=nats-route://127.0.0.1:6222 NATS_ROUTE_2=nats-route://127.0.0.1:6223 NATS_ROUTE_3=nats-route://127.0.0.1:6224 \
    "$server" -c "$here/node.conf" &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM
echo "NATS cluster: nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"
wait
