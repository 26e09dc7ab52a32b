#!/usr/bin/env bash
# Proves that the services' container images build without a Docker daemon and without reaching any registry, and
# that they run: a manual check (minutes; needs root; installs Debian packages), not part of ./test.sh or CI.
#
#   1. base image: `debootstrap --variant=minbase bookworm` + a jlinked Temurin 25 JRE in /opt/jre + user 185, packed
#      as a docker-save tarball (the one online step: it fetches Debian packages; cached under target/images/base)
#   2. in a network namespace with nothing but loopback: a registry (Debian's docker-registry) on 127.0.0.1:5000,
#      the Maven build offline (-o) with Quarkus' Jib extension: base image tar://…, push to the loopback registry
#   3. `skopeo copy` of each image to a docker-archive under target/images
#   4. smoke test: each image unpacked and run with chroot as uid 185, root filesystem read-only, /tmp a tmpfs,
#      /proc mounted, the checkpoint bind-mounted read-only at /models/default: the expert image, then the router
#      image against it, then the gateway image against the router; all must answer /q/health/ready UP, one greedy
#      generation goes through router and expert (and must equal the runtime's in-process output), and one chat
#      completion through all three
#
# Usage: scripts/build-images.sh [--fresh-base]      (README.md, "Container images", says what it showed)
# Environment: MOE_DEBIAN_MIRROR (default http://deb.debian.org/debian), MOE_IMAGE_TAG (default: the services' tag).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/find-jdk.sh
# The images this proves (each module configures Jib the same way in its application.properties).
SERVICES=(gateway-service router-service expert-service)
W="$ROOT/target/images"
BASE_TAR="$W/base/debian12-jre25.tar"
REGISTRY=127.0.0.1:5000
TAG="${MOE_IMAGE_TAG:-0.1.0}"
# Modules of the JRE: Java SE, the Vector API, and what Netty, JNA, gRPC and the JDK's own tools use.
JRE_MODULES=java.se,jdk.incubator.vector,jdk.unsupported,jdk.crypto.ec,jdk.crypto.cryptoki,jdk.charsets,jdk.naming.dns,jdk.net,jdk.nio.mapmode,jdk.zipfs,jdk.jfr,jdk.management,jdk.management.jfr,jdk.security.auth,jdk.security.jgss,jdk.jcmd

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.0f MiB", b / 1048576 }'; }
say() { echo "== $*" >&2; }
summary() { echo "$*" >> "$W/summary.txt"; echo "   $*" >&2; }
STARTED=()
stop_started() { [ ${#STARTED[@]} -eq 0 ] || kill "${STARTED[@]}" 2>/dev/null || true; }

offline_phase() {
  # Runs inside `unshare --net --mount`: no network but loopback, and mounts that vanish with the namespace.
  ip link set lo up
  ! curl -s -m 3 -o /dev/null http://deb.debian.org/ || { echo "error: the offline phase can reach the network" >&2; exit 1; }
  summary "network: only loopback (deb.debian.org unreachable from the build's namespace)"
  mkdir -p "$W/registry"
  cat > "$W/registry/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $W/registry/data}
http: {addr: $REGISTRY}
EOF
  docker-registry serve "$W/registry/config.yml" > "$W/registry/registry.log" 2>&1 &
  STARTED+=($!)
  trap stop_started EXIT
  for _ in $(seq 50); do curl -sf "http://$REGISTRY/v2/" >/dev/null && break; sleep 0.2; done

  say "Jib build of ${SERVICES[*]} (Maven offline, base tar://$BASE_TAR, push to $REGISTRY)"
  local t=$(now) modules
  modules=$(IFS=,; echo "${SERVICES[*]}")
  ./mvnw -B -q -o package -pl "$modules" -am -DskipTests \
    -Dquarkus.container-image.build=true -Dquarkus.container-image.push=true \
    -Dquarkus.container-image.registry="$REGISTRY" -Dquarkus.container-image.insecure=true \
    -Dquarkus.container-image.tag="$TAG" -Dquarkus.jib.base-jvm-image="tar://$BASE_TAR" > "$W/jib-build.log" 2>&1 \
    || { tail -40 "$W/jib-build.log" >&2; exit 1; }
  summary "jib build + push of ${SERVICES[*]} (Maven -o, -am, -DskipTests): $(since "$t")"
  summary "registry catalog: $(curl -s "http://$REGISTRY/v2/_catalog")"

  for s in "${SERVICES[@]}"; do
    t=$(now)
    rm -f "$W/$s.tar"
    skopeo copy -q --src-tls-verify=false "docker://$REGISTRY/moe-serve/$s:$TAG" "docker-archive:$W/$s.tar:moe-serve/$s:$TAG"
    local pushed
    pushed=$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/moe-serve/$s:$TAG" | python3 -c 'import json,sys; m=json.load(sys.stdin); print("%d layers, %.0f MiB compressed" % (len(m["layers"]), sum(l["size"] for l in m["layers"]) / 1048576))')
    summary "moe-serve/$s:$TAG: in the registry $pushed; docker-archive $(mib "$W/$s.tar") ($(since "$t") to copy)"
  done
  python3 scripts/images/image-tar.py config "$W/expert-service.tar" > "$W/expert-service.config.json"
  summary "expert image config: $(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print("user", c["User"], "| workdir", c["WorkingDir"], "| entrypoint", " ".join(c["Entrypoint"]), "| ports", " ".join(sorted(c["ExposedPorts"] or {})))' "$W/expert-service.config.json")"

  smoke_test
}

# A container the way a pod runs it: uid 185, read-only root, tmpfs /tmp, /proc, a minimal /dev, the model read-only.
start_container() {
  local image=$1 name=$2; shift 2
  local R="$W/run/$name"
  rm -rf "$R"
  mkdir -p "$R"
  python3 scripts/images/image-tar.py unpack "$W/$image.tar" "$R"
  mkdir -p "$R/models/default" "$R/etc/moe-serve/router" "$R/proc" "$R/tmp" "$R/dev"
  [ -f "$W/run/$name.properties" ] && cp "$W/run/$name.properties" "$R/etc/moe-serve/router/application.properties"
  mount --bind "$R" "$R"
  mount -o remount,bind,ro "$R"
  mount -t proc proc "$R/proc"
  mount -t tmpfs -o mode=1777,size=1g tmpfs "$R/tmp"
  mount -t tmpfs -o mode=755,size=1m tmpfs "$R/dev"
  for d in null zero random urandom; do touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done
  mount --bind -o ro "$W/model" "$R/models/default"
  if chroot --userspec=185:185 "$R" /bin/sh -c 'echo x > /home/jboss/probe' 2>/dev/null; then
    echo "error: $name: the root filesystem is writable" >&2; exit 1
  fi
  summary "$name: root filesystem read-only (writing /home/jboss as uid 185 fails), /tmp a tmpfs, model read-only"
  local config="$W/run/$name.config.json"
  python3 scripts/images/image-tar.py config "$W/$image.tar" > "$config"
  local -a env entry
  mapfile -t env < <(python3 -c 'import json,sys; [print(e) for e in json.load(open(sys.argv[1]))["Env"]]' "$config")
  mapfile -t entry < <(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); [print(a) for a in (c["Entrypoint"] or []) + (c["Cmd"] or [])]' "$config")
  local workdir user
  workdir=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["WorkingDir"] or "/")' "$config")
  user=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["User"] or "0")' "$config")
  # the image's user and environment, plus what the chart's Deployment sets ("$@")
  chroot --userspec="$user:$user" "$R" /usr/bin/env -i "${env[@]}" "$@" /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "${entry[@]}" \
    > "$W/run/$name.log" 2>&1 &
  echo $!
}

await_ready() {
  local name=$1 port=$2 pid=$3 t=$4
  for _ in $(seq 1200); do
    if ! kill -0 "$pid" 2>/dev/null; then echo "error: $name exited:" >&2; tail -30 "$W/run/$name.log" >&2; exit 1; fi
    if curl -sf "http://127.0.0.1:$port/q/health/ready" > "$W/run/$name.ready.json" 2>/dev/null; then
      summary "$name: /q/health/ready UP after $(since "$t"): $(tr -d '\n ' < "$W/run/$name.ready.json" | cut -c1-200)"
      return
    fi
    sleep 0.25
  done
  echo "error: $name not ready after 300 s" >&2; tail -30 "$W/run/$name.log" >&2; exit 1
}

smoke_test() {
  say "smoke test: chroot as uid 185, read-only root"
  mkdir -p "$W/run"
  local common=(MOE_MODEL_PATH=/models/default MOE_MODEL_ID=default)
  local t=$(now) expert router
  expert=$(start_container expert-service expert "${common[@]}" MOE_EXPERT_HOSTS='*' MOE_EXPERT_GROUP=all \
    MOE_EXPERT_ROUTING_TABLE_VERSION=1 MOE_EXPERT_DRAIN_TIMEOUT=30s MOE_EXPERT_MAX_BATCH_TOKENS=4096 MOE_EXPERT_BACKEND=cpu)
  STARTED+=("$expert")
  await_ready expert 8080 "$expert" "$t"
  local java_pid
  java_pid=$(pgrep -P "$expert" java || echo "$expert")
  summary "expert process: uid $(awk '/^Uid:/ { print $2 }' "/proc/$java_pid/status"), flags: $(tr '\0' ' ' < "/proc/$java_pid/cmdline" | grep -o -- '--add-modules=[^ ]* --enable-native-access=[^ ]*')"
  summary "expert metrics: $(curl -s http://127.0.0.1:8080/q/metrics | grep -c '^moe_expert_') moe_expert_* series, e.g. $(curl -s http://127.0.0.1:8080/q/metrics | grep '^moe_expert_pod_busy_seconds_total' | head -1)"
  summary "expert /tmp after start: $(ls "$W/run/expert/tmp" | tr '\n' ' ')"

  # the router, on other ports (one network namespace), reading its expert map like the chart's ConfigMap
  cat > "$W/run/router.properties" <<EOF
moe.router.experts.mode=remote
moe.router.experts.routing-table-version=1
moe.router.experts.refresh-interval=1s
moe.router.experts.groups.all.hosts=*
moe.router.experts.groups.all.endpoints=127.0.0.1:9000
EOF
  t=$(now)
  router=$(start_container router-service router "${common[@]}" QUARKUS_HTTP_PORT=8081 QUARKUS_GRPC_SERVER_PORT=9001 \
    QUARKUS_CONFIG_LOCATIONS=/etc/moe-serve/router/application.properties)
  STARTED+=("$router")
  await_ready router 8081 "$router" "$t"
  t=$(now)
  local generated expected
  generated=$(java -cp "router-service/target/quarkus-app/lib/main/*" scripts/images/GenerateOnce.java 127.0.0.1 9001 16 2>/dev/null)
  summary "generation through the router image and the expert image: $generated ($(since "$t"))"
  # the same prompt in one process (the runtime's CLI on the host JDK): the images must compute the same tokens
  expected=$(bin/moe generate "$W/model" --prompt-ids 11,250,3,1999,42,7 --max-new-tokens 16 --ignore-eos --temperature 0 --json 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["generated_token_ids"])')
  [[ "$generated" == *"tokens $expected" ]] || { echo "error: the images generated $generated, the runtime in one process $expected" >&2; exit 1; }
  summary "the same 16 tokens as bin/moe generate in one process: $expected"
  summary "expert after the generation: $(curl -s http://127.0.0.1:8080/q/metrics | grep '^moe_expert_pod_tokens_total')"

  # the gateway, on the router (its tokenizer and chat template come from the checkpoint directory)
  t=$(now)
  local gateway
  gateway=$(start_container gateway-service gateway "${common[@]}" QUARKUS_HTTP_PORT=8082 \
    QUARKUS_GRPC_CLIENTS_ROUTER_HOST=127.0.0.1 QUARKUS_GRPC_CLIENTS_ROUTER_PORT=9001)
  STARTED+=("$gateway")
  await_ready gateway 8082 "$gateway" "$t"
  t=$(now)
  local chat
  chat=$(curl -s -m 120 http://127.0.0.1:8082/v1/chat/completions -H 'Content-Type: application/json' \
    -d '{"model": "default", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 8}')
  python3 -c 'import json,sys; c=json.loads(sys.argv[1]); assert c["choices"][0]["message"]["role"] == "assistant" and c["usage"]["completion_tokens"] > 0, c' "$chat" \
    || { echo "error: the chat completion through the gateway image failed: $chat" >&2; exit 1; }
  summary "chat completion through gateway, router and expert images: $(python3 -c 'import json,sys; c=json.loads(sys.argv[1]); print(c["usage"], "finish_reason", c["choices"][0]["finish_reason"])' "$chat") ($(since "$t"))"
  summary "gateway /tmp after the request: $(cd "$W/run/gateway/tmp" && find . -maxdepth 2 | sort | tr '\n' ' ')"
  stop_started
}

if [ "${1:-}" = "__offline" ]; then offline_phase; exit 0; fi

[ "$(id -u)" = 0 ] || { echo "error: run as root (debootstrap, chroot, mounts, network namespace)" >&2; exit 1; }
need=()
for c in debootstrap:debootstrap docker-registry:docker-registry skopeo:skopeo curl:curl; do
  command -v "${c%%:*}" >/dev/null || need+=("${c##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") >&2
fi
mkdir -p "$W/base"
: > "$W/summary.txt"
summary "build-images.sh on $(hostname), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), JDK $(java -version 2>&1 | head -1)"
T0=$(now)

if [ "${1:-}" = "--fresh-base" ] || [ ! -f "$BASE_TAR" ]; then
  B="$W/base"
  rm -rf "$B/rootfs" "$BASE_TAR"
  say "debootstrap --variant=minbase bookworm"
  t=$(now)
  debootstrap --variant=minbase bookworm "$B/rootfs" "${MOE_DEBIAN_MIRROR:-http://deb.debian.org/debian}" > "$B/debootstrap.log" 2>&1 \
    || { tail -20 "$B/debootstrap.log" >&2; exit 1; }
  rm -rf "$B/rootfs"/usr/share/{doc,man,info,locale}/* "$B/rootfs"/var/lib/apt/lists/* "$B/rootfs"/var/cache/apt/*.bin
  summary "debootstrap minbase bookworm: $(since "$t"), $(du -sm "$B/rootfs" | cut -f1) MiB"
  # the Quarkus images' user: uid/gid 185, what the chart's podSecurityContext runs as
  echo "jboss:x:185:185:moe-serve:/home/jboss:/usr/sbin/nologin" >> "$B/rootfs/etc/passwd"
  echo "jboss:x:185:" >> "$B/rootfs/etc/group"
  t=$(now)
  jlink --add-modules "$JRE_MODULES" --strip-debug --no-man-pages --no-header-files --output "$B/rootfs/opt/jre"
  summary "jlink JRE ($JRE_MODULES): $(since "$t"), $(du -sm "$B/rootfs/opt/jre" | cut -f1) MiB"
  t=$(now)
  tar --numeric-owner -C "$B/rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf "$B/layer.tar" .
  python3 scripts/images/image-tar.py pack "$B/layer.tar" "$BASE_TAR" --tag moe-serve/base-debian12-jre25:local \
    --env PATH=/opt/jre/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env JAVA_HOME=/opt/jre \
    --env LANG=C.UTF-8 --user 185 --workdir /home/jboss
  rm -f "$B/layer.tar"
  summary "base image tarball: $(mib "$BASE_TAR") ($(since "$t") to pack)"
else
  summary "base image tarball: $(mib "$BASE_TAR") (cached; --fresh-base rebuilds it)"
fi

say "the checkpoint for the smoke test (with a tokenizer and chat template, for the gateway)"
[ -f "$W/model/config.json" ] || bin/moe synth --arch mixtral --size small --dtype bf16 --out "$W/model" >&2
summary "checkpoint: synthetic Mixtral 'small', bf16, $(du -sm "$W/model" | cut -f1) MiB"

unshare --net --mount --propagation private "$0" __offline
summary "total: $(since "$T0")"
echo >&2
cat "$W/summary.txt"
