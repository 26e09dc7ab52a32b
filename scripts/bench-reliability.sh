#!/usr/bin/env bash
# Issue 13's reliability scenarios beside the router kill (BENCHMARKS.md "Reliability rows"): STREAMS clients
# streaming greedy chat completions one after another for SECONDS through a gateway over a router and expert pods,
# and one event halfway. Prints one Markdown row: requests, failures (and how), the longest gap between chunks.
#   scripts/bench-reliability.sh SCENARIO [SECONDS] [STREAMS] [MODEL]
# SCENARIO: tls-reload (mutual TLS on every hop, the shared certificate renewed), degraded-mask or degraded-fail
# (both replicas of one expert group killed, moe.router.experts.degraded-mode mask or the default fail).
# SECONDS default 60, STREAMS 8; MODEL a checkpoint directory, default models/router-kill (the system tests' small
# synthetic Mixtral, generated on first use). Builds the services first (package, tests skipped); tls-reload needs
# openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIO="${1:?usage: scripts/bench-reliability.sh tls-reload|degraded-mask|degraded-fail [SECONDS] [STREAMS] [MODEL]}"
MODEL="${4:-models/router-kill}"
if [ ! -f "$MODEL/config.json" ]; then
  bin/moe synth --arch mixtral --size small --dtype bf16 --out "$MODEL"
fi
exec scripts/system-tests-main.sh ReliabilityDriver "$MODEL" "$SCENARIO" "${2:-60}" "${3:-8}"
