#!/usr/bin/env bash
# Runs the JMH kernel benchmarks of model-runtime (src/jmh/java). Arguments go to JMH, e.g.
#   scripts/jmh.sh MatmulBenchmark -p dtype=BF16 -p tokens=1
#   scripts/jmh.sh -l            (list the benchmarks)
# Run it on a quiet machine; figures go to BENCHMARKS.md with `bin/moe bandwidth` beside them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/find-jdk.sh
./mvnw -B -q -pl model-runtime -am test-compile -Dmaven.test.skip.exec=true
CP_FILE=model-runtime/target/jmh-classpath.txt
./mvnw -B -q -pl model-runtime dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile="$(pwd)/$CP_FILE" >/dev/null
exec java --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  -cp "model-runtime/target/test-classes:model-runtime/target/classes:$(cat "$CP_FILE")" \
  org.openjdk.jmh.Main "$@" 2> >(grep -v "WARNING: Using incubator modules" >&2)
