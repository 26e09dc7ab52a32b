#!/usr/bin/env bash
# Runs the whole system on this machine with the built-in default model (a small synthetic Mixtral-shaped
# checkpoint with a real tokenizer and chat template, generated on first use under models/default):
#   gateway-service  http://localhost:8080   the OpenAI-compatible API
#   router-service   :8081 (HTTP) :9081 (gRPC)
#   expert-service   :8082/:9082 hosting experts 0-3 of every layer, :8083/:9083 hosting the others
# It builds what it needs first, then waits; Ctrl-C stops everything. Logs: target/run-logs/.
#   ./run.sh                 gateway → router → two expert pods
#   ./run.sh --all-in-one    gateway → router with every expert inside it
# Environment: MOE_MODEL (checkpoint directory), MOE_API_KEY (require this bearer key at the gateway).
# Memory: each service's heap and direct memory are capped for the default model (scripts/jvm-options.sh says how
# they split; gateway 256m, router 768m with its 256M KV cache, pods 256m): MOE_GATEWAY_HEAP, MOE_ROUTER_HEAP and
# MOE_EXPERT_HEAP change them (a bigger model wants a bigger router heap for its KV cache), MOE_JAVA_OPTS adds options.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/find-jdk.sh
source scripts/jvm-options.sh
MODE=distributed
[ "${1:-}" = "--all-in-one" ] && MODE=all-in-one
MODEL="$(realpath -m "${MOE_MODEL:-models/default}")"
APPS=(gateway-service router-service expert-service)

stale=""
for app in "${APPS[@]}"; do
  jar="$app/target/quarkus-app/quarkus-run.jar"
  if [ ! -f "$jar" ] || [ -n "$(find "$app/src/main" "$app/pom.xml" model-runtime/src/main tokenizer/src/main proto/src/main pom.xml -newer "$jar" -type f -print -quit)" ]; then
    stale=yes
  fi
done
if [ -n "$stale" ]; then
  echo "building the services (first run, or sources changed)..." >&2
  ./mvnw -B -q -DskipTests -pl gateway-service,router-service,expert-service -am package >&2
fi
if [ ! -f "$MODEL/config.json" ]; then
  bin/moe synth --arch mixtral --size small --dtype bf16 --out "$MODEL"
fi
EXPERTS=$(python3 -c "import json,sys; c=json.load(open(sys.argv[1])); print(c.get('num_local_experts') or c.get('num_experts') or c.get('n_routed_experts'))" "$MODEL/config.json")
HALF=$((EXPERTS / 2))

LOGS=target/run-logs
mkdir -p "$LOGS"
pids=()
declare -A PID
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping..." >&2
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

start() { # name service jar args...
  local name=$1 service=$2 jar=$3; shift 3
  local -a jvm
  read -r -a jvm <<< "$(moe_jvm_options "$service")"
  java "${jvm[@]}" "$@" -Dmoe.model.path="$MODEL" -jar "$jar" >"$LOGS/$name.log" 2>&1 &
  pids+=($!)
  PID[$name]=$!
}
await_ready() { # name port
  for _ in $(seq 1 600); do
    if curl -fs "http://localhost:$2/q/health/ready" >/dev/null 2>&1; then return 0; fi
    kill -0 "${PID[$1]}" 2>/dev/null || break
    sleep 0.2
  done
  echo "error: $1 did not become ready; see $LOGS/$1.log" >&2
  tail -20 "$LOGS/$1.log" >&2
  exit 1
}

ROUTER_ARGS=(-Dquarkus.http.port=8081 -Dquarkus.grpc.server.port=9081)
if [ "$MODE" = distributed ]; then
  start expert-low expert expert-service/target/quarkus-app/quarkus-run.jar -Dquarkus.http.port=8082 -Dquarkus.grpc.server.port=9082 \
    -Dmoe.expert.hosts="*:0-$((HALF - 1))" -Dmoe.expert.group=low
  start expert-high expert expert-service/target/quarkus-app/quarkus-run.jar -Dquarkus.http.port=8083 -Dquarkus.grpc.server.port=9083 \
    -Dmoe.expert.hosts="*:$HALF-$((EXPERTS - 1))" -Dmoe.expert.group=high
  ROUTER_ARGS+=(-Dmoe.router.experts.mode=remote
    "-Dmoe.router.experts.groups.low.hosts=*:0-$((HALF - 1))" -Dmoe.router.experts.groups.low.endpoints=localhost:9082
    "-Dmoe.router.experts.groups.high.hosts=*:$HALF-$((EXPERTS - 1))" -Dmoe.router.experts.groups.high.endpoints=localhost:9083)
else
  ROUTER_ARGS+=(-Dmoe.router.experts.mode=local)
fi
start router router router-service/target/quarkus-app/quarkus-run.jar "${ROUTER_ARGS[@]}"
GATEWAY_ARGS=(-Dquarkus.http.port=8080 -Dquarkus.grpc.clients.router.host=localhost -Dquarkus.grpc.clients.router.port=9081)
[ -n "${MOE_API_KEY:-}" ] && GATEWAY_ARGS+=(-Dmoe.gateway.api-keys="$MOE_API_KEY")
start gateway gateway gateway-service/target/quarkus-app/quarkus-run.jar "${GATEWAY_ARGS[@]}"

if [ "$MODE" = distributed ]; then
  await_ready expert-low 8082
  await_ready expert-high 8083
fi
await_ready router 8081
await_ready gateway 8080
MODEL_ID=$(basename "$MODEL")
cat <<MSG

moe-serve is up ($MODE) on $MODEL:
  OpenAI-compatible API   http://localhost:8080/v1   (model "$MODEL_ID")
  router                  http://localhost:8081/v1/routing-stats, /q/metrics
$( [ "$MODE" = distributed ] && echo "  expert pods             http://localhost:8082/q/metrics (experts 0-$((HALF - 1))), http://localhost:8083/q/metrics (experts $HALF-$((EXPERTS - 1)))" )

Try:
  curl -s http://localhost:8080/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model": "$MODEL_ID", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 32}'

Logs in $LOGS/. Ctrl-C stops everything.
MSG
wait
