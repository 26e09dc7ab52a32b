#!/usr/bin/env bash
# Expert call overhead: one expert pod (every expert) called the way the router calls it, with 1- and 16-token calls
# that compute nothing or route top-k at random, back to back and after the client idled IDLE_MICROS; prints the round
# trip against the compute time the pod reports, as a Markdown table for BENCHMARKS.md.
# Usage: scripts/bench-expert-call.sh [MODEL_DIR [CALLS [POD_THREADS [IDLE_MICROS [ROUNDS]]]]] (default models/bench 2000 1 4000 4).
set -euo pipefail
exec "$(dirname "$0")/system-tests-main.sh" ExpertCallBenchmark "${1:-models/bench}" "${2:-2000}" "${3:-1}" "${4:-4000}" "${5:-4}"
