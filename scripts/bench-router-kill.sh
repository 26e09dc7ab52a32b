#!/usr/bin/env bash
# Router kill under load (issue 13, BENCHMARKS.md "Reliability"): a gateway over two all-in-one routers, STREAMS
# clients streaming greedy completions one after another for SECONDS, one router killed with SIGKILL halfway.
# Prints requests, failures and the longest gap between chunks of the streams running at the kill.
#   scripts/bench-router-kill.sh [MODEL] [SECONDS] [STREAMS]
# MODEL: a checkpoint directory, default models/router-kill, a small synthetic Mixtral (the system tests' size)
# generated on first use; SECONDS default 20, STREAMS default 8. Builds the services first (package, tests skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-models/router-kill}"
if [ ! -f "$MODEL/config.json" ]; then
  bin/moe synth --arch mixtral --size small --dtype bf16 --out "$MODEL"
fi
exec scripts/system-tests-main.sh RouterKillDriver "$MODEL" "${2:-20}" "${3:-8}"
