#!/usr/bin/env bash
# What a client that stops reading costs the rest of its room: the p99
# delivery latency of the readers of one busy room with and without one
# slow client in it (loadgen -slow-clients 1), on a fresh gateway each
# run, runs alternating (without, with, without, ...). Prints each run's
# result line and then one JSON line "slow-client-figures" with the
# medians and their ratio. The gateway cuts the slow client off once
# 8 MiB wait for it (gateway_limit_hits_total{limit="ws_buffer"}). Read
# other_cpu_percent (the rest of the machine during each step) before
# comparing tails: on a busy machine it, not the slow client, sets the p99.
#
#   test/load/slow_client.sh                 # 3 runs each, 100 readers, 1,000 events/s of ~2 KB, 8 s
#   RUNS=1 STEP=4s test/load/slow_client.sh  # quicker
#
# Run it under the shared lock on a shared machine:
#   flock /tmp/gateway-bench.lock test/load/slow_client.sh
set -euo pipefail
cd "$(dirname "$0")"

RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-100}
RATE=${RATE:-1000}
STEP=${STEP:-8s}
SECRET=bench-slow-client-secret
OUT=${OUT:-results-slow}
mkdir -p bin "$OUT"

(cd ../.. && go build -o test/load/bin/gateway ./cmd/gateway)
go build -o bin/loadgen ./cmd/loadgen

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

gw_pid=
cleanup() { if [[ -n "$gw_pid" ]]; then kill "$gw_pid" 2>/dev/null || true; wait "$gw_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

# run MODE N: one loadgen run against a fresh gateway; MODE is without|with.
run() {
  local mode=$1 n=$2 port slow=0
  [[ "$mode" == with ]] && slow=1
  port=$(free_port)
  GATEWAY_ENV=development GATEWAY_HOST=127.0.0.1 PORT=$port MODAL_WEBHOOK_SECRET=$SECRET \
    GATEWAY_EVENTS_SECRET=$SECRET-events GATEWAY_LOG_LEVEL=warn bin/gateway >"$OUT/gateway-$mode-$n.log" 2>&1 &
  gw_pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
  bin/loadgen -scenario fanout -source publish -label "gateway-$mode" -url "http://127.0.0.1:$port" -pid "$gw_pid" \
    -secret "$SECRET" -clients "$CLIENTS" -rates "$RATE" -step "$STEP" -stop-at-knee=false -big \
    -slow-clients "$slow" -max-duration 2m >"$OUT/$mode-$n.jsonl"
  kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true; gw_pid=
  tail -n 1 "$OUT/$mode-$n.jsonl"
}

for n in $(seq "$RUNS"); do
  if (( n % 2 )); then run without "$n"; run with "$n"; else run with "$n"; run without "$n"; fi
done

python3 - "$OUT" "$RUNS" "$RATE" <<'EOF'
import json, statistics, sys, platform
out, runs, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def figures(mode):
    rs = []
    for n in range(1, runs + 1):
        with open(f"{out}/{mode}-{n}.jsonl") as f:
            rs.append(json.loads(f.read().strip().splitlines()[-1]))
    return rs
def fig(r, prefix):
    f = r["figures"]
    k = [k for k in f if k.startswith(prefix + "@")]
    return f[k[0]] if k else float("nan")
def p99(r): return fig(r, "p99_ms")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
w, wo = figures("with"), figures("without")
pw, pwo = [p99(r) for r in w], [p99(r) for r in wo]
res = {
    "p99_ms_without": pwo, "p99_ms_with": pw,
    "median_p99_ms_without": statistics.median(pwo), "median_p99_ms_with": statistics.median(pw),
    "p99_ratio": round(statistics.median(pw) / statistics.median(pwo), 2),
    "p50_ms_without": [fig(r, "p50_ms") for r in wo], "p50_ms_with": [fig(r, "p50_ms") for r in w],
    "other_cpu_percent_without": [round(fig(r, "other_cpu_percent")) for r in wo],
    "other_cpu_percent_with": [round(fig(r, "other_cpu_percent")) for r in w],
    "slow_clients_cut": [r["figures"].get("slow_clients_cut") for r in w],
    "ws_buffer_hits": [r["figures"].get("ws_buffer_hits") for r in w],
    "lost": [r.get("totals", {}).get("lost") for r in w + wo],
    "runs": runs, "rate_events_per_sec": rate, "cpu": cpu, "cores": __import__("os").cpu_count(),
}
print("slow-client-figures " + json.dumps(res))
EOF
