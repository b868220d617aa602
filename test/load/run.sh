#!/usr/bin/env bash
# The load harness's entry point: raises the open-file limit, then runs
# cmd/bench (which builds the gateway and the generator, installs the
# node and flask peers when missing, runs every scenario against every
# server and writes results/*.json and out/benchmarks.{md,png}).
#
#   ./run.sh                         # full run: 3 runs x all scenarios x gateway, node, flask
#   ./run.sh -smoke                  # CI smoke: gateway only, < 60 s, exit 1 on any loss
#   ./run.sh -profile quick -runs 1  # development sizes
#   ./run.sh -scenarios fanout,idle -servers gateway,node -out /tmp/bench
#   ./run.sh report                  # rebuild out/ from results/
#
# Every flag is cmd/bench's (go run ./cmd/bench -h). Targets are 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")"

# 10k-20k clients need one descriptor each in the server and in the
# generator. Raise the soft limit as far as the hard limit allows (a
# container may forbid raising the hard one: bench then caps client counts).
want=200000
hard=$(ulimit -Hn)
if [[ "$hard" != unlimited && "$hard" -lt "$want" ]]; then
  ulimit -Hn "$want" 2>/dev/null || true
  hard=$(ulimit -Hn)
fi
if [[ "$hard" == unlimited || "$hard" -ge "$want" ]]; then ulimit -n "$want"; else ulimit -n "$hard"; fi

# 20k connections to one port from 127.0.0.1 need ~20k ephemeral ports;
# loadgen also spreads big runs over 127.0.0.2-9 (-source-ips).
range=$(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo "32768 60999")
echo "run.sh: ulimit -n $(ulimit -n) (hard $(ulimit -Hn)), ip_local_port_range ${range//$'\t'/-}" >&2

if [[ "${1:-}" == report ]]; then
  shift
  exec go run ./cmd/bench report "$@"
fi
go build -o bin/bench ./cmd/bench
exec ./bin/bench "$@"
