#!/usr/bin/env bash
# Expert call overhead: one expert pod (every expert) called the way the router calls it, with 1- and 16-token calls
# that compute nothing or route top-k at random, back to back and after the client idled IDLE_MICROS; prints the round
# trip against the compute time the pod reports, as a Markdown table for BENCHMARKS.md.
# Usage: scripts/bench-expert-call.sh [MODEL_DIR [CALLS [POD_THREADS [IDLE_MICROS]]]] (default models/bench 2000 1 4000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/find-jdk.sh
MODEL="${1:-models/bench}"
if [ ! -f "$MODEL/config.json" ]; then
  bin/moe synth --arch mixtral --size bench --dtype bf16 --out "$MODEL"
fi
CP_FILE="$(pwd)/system-tests/target/bench-classpath.txt"
./mvnw -B -q -pl system-tests -am -DskipTests package dependency:build-classpath \
  -Dmdep.includeScope=test -Dmdep.outputFile="$CP_FILE" >&2
exec java --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  -Dmoe.repo.root="$(pwd)" -cp "system-tests/target/test-classes:$(cat "$CP_FILE")" \
  io.moeserve.system.ExpertCallBenchmark "$MODEL" "${2:-2000}" "${3:-1}" "${4:-4000}" 2> >(grep -v "WARNING: Using incubator modules" >&2)
