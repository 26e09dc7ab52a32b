#!/usr/bin/env bash
# Runs a benchmark main class of system-tests' test sources against the packaged services: builds them, generates
# the model when it is missing (the ~1.2 B-parameter Mixtral-shaped benchmark model), then runs the class.
# Usage: scripts/system-tests-main.sh CLASS MODEL_DIR [ARGS...] (used by bench-serving.sh and bench-expert-call.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/find-jdk.sh
CLASS="$1"
MODEL="$2"
shift 2
if [ ! -f "$MODEL/config.json" ]; then
  bin/moe synth --arch mixtral --size bench --dtype bf16 --out "$MODEL"
fi
CP_FILE="$(pwd)/system-tests/target/bench-classpath.txt"
# MOE_SKIP_BUILD=1 runs what the last build packaged (bench-techniques.sh's runs after its first).
if [ "${MOE_SKIP_BUILD:-0}" != 1 ] || [ ! -f "$CP_FILE" ]; then
  ./mvnw -B -q -pl system-tests -am -DskipTests package dependency:build-classpath \
    -Dmdep.includeScope=test -Dmdep.outputFile="$CP_FILE" >&2
fi
exec java --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  -Dmoe.repo.root="$(pwd)" -cp "system-tests/target/test-classes:$(cat "$CP_FILE")" \
  "io.moeserve.system.$CLASS" "$MODEL" "$@" 2> >(grep -v "WARNING: Using incubator modules" >&2)
