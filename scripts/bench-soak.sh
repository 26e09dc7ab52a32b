#!/usr/bin/env bash
# Soak benchmark (not part of the test suite): the distributed system as run.sh starts it (gateway, router, two expert
# pods, each with scripts/jvm-options.sh's options) under STREAMS concurrent streamed chat completions for MINUTES
# after a warm-up. At the end of the warm-up and at the end of the soak it samples each process's resident memory
# (VmRSS, and its anonymous and file-backed parts from /proc/PID/status) and its heap after a full GC (jcmd GC.run,
# then GC.heap_info), prints a Markdown table and fails when RSS grew by more than 5%, heap after GC by more than 5%
# and 4 MiB, or a request after the warm-up failed.
#
# Every MOE_SOAK_EVERY seconds it also records each process's RSS (no GC) in target/soak/timeline.tsv and prints it
# as a row per process: memory still filling after the warm-up levels off there, a leak keeps climbing. With
# MOE_SOAK_NMT=1 every JVM runs with -XX:NativeMemoryTracking=summary, a baseline is taken at the first sample and
# target/soak/NAME.nmt-diff.txt holds `jcmd VM.native_memory summary.diff` at the end: what the JVM itself allocated
# outside the heap, by category (malloc by native libraries, e.g. the tokenizer's Rust code, is not in it).
#
# Usage: scripts/bench-soak.sh [MINUTES [STREAMS]]        (defaults 30 and 16)
# Environment: MOE_MODEL (default models/default), MOE_SOAK_WARMUP (seconds of load before the first sample, default
# 300: at 60 s on a loaded 2-core machine the gateway's JIT was still filling its code cache, BENCHMARKS.md), MOE_SOAK_MAX_TOKENS (per request, default 64), MOE_SOAK_PORT (first of eight loopback ports, default 18080),
# MOE_SOAK_EVERY (default 60), MOE_SOAK_NMT, and run.sh's MOE_*_HEAP / MOE_JAVA_OPTS.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/find-jdk.sh
source scripts/jvm-options.sh
MINUTES="${1:-30}"
STREAMS="${2:-16}"
WARMUP="${MOE_SOAK_WARMUP:-300}"
MAX_TOKENS="${MOE_SOAK_MAX_TOKENS:-64}"
PORT="${MOE_SOAK_PORT:-18080}"
EVERY="${MOE_SOAK_EVERY:-60}"
NMT="${MOE_SOAK_NMT:-}"
MODEL="$(realpath -m "${MOE_MODEL:-models/default}")"
OUT=target/soak
mkdir -p "$OUT"

for app in gateway-service router-service expert-service; do
  [ -f "$app/target/quarkus-app/quarkus-run.jar" ] && continue
  ./mvnw -B -q -DskipTests -pl gateway-service,router-service,expert-service -am package >&2
  break
done
[ -f "$MODEL/config.json" ] || bin/moe synth --arch mixtral --size small --dtype bf16 --out "$MODEL" >&2
EXPERTS=$(python3 -c "import json,sys; c=json.load(open(sys.argv[1])); print(c.get('num_local_experts') or c.get('num_experts') or c.get('n_routed_experts'))" "$MODEL/config.json")
HALF=$((EXPERTS / 2))

declare -A PID
NAMES=()
stop() {
  trap - INT TERM EXIT
  [ -n "${TIMELINE:-}" ] && kill "$TIMELINE" 2>/dev/null
  for n in "${NAMES[@]}"; do kill "${PID[$n]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT
start() { # name service http grpc args...
  local name=$1 service=$2 http=$3 grpc=$4; shift 4
  local -a jvm
  read -r -a jvm <<< "$(moe_jvm_options "$service")"
  [ -n "$NMT" ] && jvm+=(-XX:NativeMemoryTracking=summary)
  java "${jvm[@]}" -Dmoe.model.path="$MODEL" -Dquarkus.http.port="$http" -Dquarkus.grpc.server.port="$grpc" "$@" \
    -jar "$service-service/target/quarkus-app/quarkus-run.jar" > "$OUT/$name.log" 2>&1 &
  PID[$name]=$!
  NAMES+=("$name")
  echo "$name: java ${jvm[*]}" >&2
}
await_ready() { # name port
  for _ in $(seq 1 1500); do
    curl -fs "http://127.0.0.1:$2/q/health/ready" >/dev/null 2>&1 && return 0
    kill -0 "${PID[$1]}" 2>/dev/null || break
    sleep 0.2
  done
  echo "error: $1 did not become ready; see $OUT/$1.log" >&2
  tail -20 "$OUT/$1.log" >&2
  exit 1
}

start expert-low expert $((PORT + 2)) $((PORT + 1002)) -Dmoe.expert.hosts="*:0-$((HALF - 1))" -Dmoe.expert.group=low
start expert-high expert $((PORT + 3)) $((PORT + 1003)) -Dmoe.expert.hosts="*:$HALF-$((EXPERTS - 1))" -Dmoe.expert.group=high
start router router $((PORT + 1)) $((PORT + 1001)) -Dmoe.router.experts.mode=remote \
  "-Dmoe.router.experts.groups.low.hosts=*:0-$((HALF - 1))" -Dmoe.router.experts.groups.low.endpoints=127.0.0.1:$((PORT + 1002)) \
  "-Dmoe.router.experts.groups.high.hosts=*:$HALF-$((EXPERTS - 1))" -Dmoe.router.experts.groups.high.endpoints=127.0.0.1:$((PORT + 1003))
start gateway gateway "$PORT" $((PORT + 1000)) -Dquarkus.grpc.clients.router.host=127.0.0.1 \
  -Dquarkus.grpc.clients.router.port=$((PORT + 1001))
await_ready expert-low $((PORT + 2))
await_ready expert-high $((PORT + 3))
await_ready router $((PORT + 1))
await_ready gateway "$PORT"

# One line per process: name, VmRSS, RssAnon, RssFile (KiB), heap used after a full GC (KiB).
sample() { # label
  for n in "${NAMES[@]}"; do
    local p=${PID[$n]}
    jcmd "$p" GC.run > /dev/null
    local heap
    heap=$(jcmd "$p" GC.heap_info | awk '/(PSYoungGen|ParOldGen|def new generation|tenured generation|garbage-first heap)/ {
        for (i = 1; i <= NF; i++) if ($i == "used") { v = $(i + 1); sub(/K,?$/, "", v); s += v } } END { print s + 0 }')
    awk -v label="$1" -v name="$n" -v heap="$heap" '/^VmRSS:/ { rss = $2 } /^RssAnon:/ { anon = $2 } /^RssFile:/ { file = $2 }
        END { print label "\t" name "\t" rss "\t" anon "\t" file "\t" heap }' "/proc/$p/status"
    if [ -n "$NMT" ]; then
      if [ "$1" = start ]; then jcmd "$p" VM.native_memory baseline > /dev/null
      else jcmd "$p" VM.native_memory summary.diff scale=KB > "$OUT/$n.nmt-diff.txt"; fi
      pmap -x "$p" > "$OUT/$n.pmap-$1.txt" 2>/dev/null || true
    fi
  done
}
# Every EVERY seconds from the start of the load: seconds, name, VmRSS (KiB); no GC, so nothing is disturbed.
timeline() {
  local t0=$SECONDS
  while :; do
    for n in "${NAMES[@]}"; do
      awk -v t=$((SECONDS - t0)) -v name="$n" '/^VmRSS:/ { print t "\t" name "\t" $2 }' "/proc/${PID[$n]}/status" 2>/dev/null || true
    done
    sleep "$EVERY"
  done
}

TOTAL=$((WARMUP + MINUTES * 60 + 20))
MODEL_ID=$(basename "$MODEL")
echo "soak: $STREAMS streams, ${WARMUP} s warm-up, $MINUTES min measured, $MAX_TOKENS tokens a request, model $MODEL" >&2
python3 - "$PORT" "$MODEL_ID" "$STREAMS" "$TOTAL" "$MAX_TOKENS" "$WARMUP" > "$OUT/load.json" <<'PY' &
import http.client, json, sys, threading, time
port, model, streams, seconds, max_tokens, warmup = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
started = time.monotonic()
deadline = started + seconds
lock = threading.Lock()
# requests that end in the warm-up are counted apart: a cold JIT on a loaded machine may miss a deadline
totals = {"requests": 0, "failed": 0, "chunks": 0, "warmup_requests": 0, "warmup_failed": 0, "errors": []}

def stream(i):
    n = 0
    while time.monotonic() < deadline:
        n += 1
        body = json.dumps({"model": model, "stream": True, "max_tokens": max_tokens, "temperature": 0.8,
                           "messages": [{"role": "user", "content": f"Stream {i}, request {n}: tell me a story about {n * 7919 % 1000}."}]})
        ok, chunks, error = False, 0, None
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            if r.status != 200:
                error = f"HTTP {r.status}: {r.read()[:200]!r}"
            else:
                for line in r:
                    if line.startswith(b"data: [DONE]"):
                        ok = True
                        break
                    if line.startswith(b"data: "):
                        chunks += 1
                        if b'"error"' in line:
                            error = line[:200].decode(errors="replace")
                            break
                if not ok and error is None:
                    error = "stream ended without [DONE]"
            c.close()
        except Exception as e:
            error = repr(e)
        warm = time.monotonic() - started < warmup
        with lock:
            totals["warmup_requests" if warm else "requests"] += 1
            totals["chunks"] += 0 if warm else chunks
            if not ok or error:
                totals["warmup_failed" if warm else "failed"] += 1
                if len(totals["errors"]) < 5:
                    totals["errors"].append(error)

threads = [threading.Thread(target=stream, args=(i,)) for i in range(streams)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(totals))
PY
LOAD=$!
timeline > "$OUT/timeline.tsv" &
TIMELINE=$!
sleep "$WARMUP"
sample start > "$OUT/samples.tsv"
sleep $((MINUTES * 60))
sample end >> "$OUT/samples.tsv"
wait "$LOAD"
kill "$TIMELINE"
TIMELINE=
for n in "${NAMES[@]}"; do kill -0 "${PID[$n]}" 2>/dev/null || { echo "error: $n exited during the soak (see $OUT/$n.log)" >&2; exit 1; }; done

python3 - "$OUT/samples.tsv" "$OUT/load.json" "$MINUTES" "$STREAMS" "$OUT/timeline.tsv" "$EVERY" <<'PY'
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
load = json.load(open(sys.argv[2]))
at = {(r[0], r[1]): [int(x) for x in r[2:]] for r in rows}
names = [r[1] for r in rows if r[0] == "start"]
mib = lambda k: f"{k / 1024:.0f}"
print(f"\nwarm-up: {load['warmup_requests']} requests, {load['warmup_failed']} failed")
print(f"{sys.argv[3]} min at {sys.argv[4]} streams: {load['requests']} requests, {load['failed']} failed, {load['chunks']} chunks")
for e in load["errors"]: print("  error:", e)
print("\n| process | RSS start → end (MiB) | anon start → end | file start → end | heap after GC start → end (MiB) | growth RSS / heap |")
print("|---|---|---|---|---|---|")
grew = []
for n in names:
    s, e = at[("start", n)], at[("end", n)]
    g_rss, g_heap = e[0] / s[0] - 1, e[3] / max(s[3], 1) - 1
    # a heap of a few MiB sampled under load moves by the requests in flight: 5% and 4 MiB both
    if g_rss > 0.05 or (g_heap > 0.05 and e[3] - s[3] > 4096): grew.append(n)
    print(f"| {n} | {mib(s[0])} → {mib(e[0])} | {mib(s[1])} → {mib(e[1])} | {mib(s[2])} → {mib(e[2])} | {s[3] / 1024:.1f} → {e[3] / 1024:.1f} "
          f"| {g_rss:+.1%} / {g_heap:+.1%} |")
series = {}
for l in open(sys.argv[5]):
    t, n, k = l.split()
    series.setdefault(n, []).append((int(t), int(k)))
print(f"\nRSS (MiB) every {sys.argv[6]} s from the start of the load (warm-up included):")
for n in names:
    print(f"  {n}: " + " ".join(mib(k) for _, k in series.get(n, [])))
import os, re
nmt = [n for n in names if os.path.exists(f"{os.path.dirname(sys.argv[1])}/{n}.nmt-diff.txt")]
if nmt:
    # what the JVM committed outside the heap grew by, by category, beside RSS: the rest is malloc it does not track
    print("\nNative memory tracking, committed growth (MiB) from the first sample to the last:")
    for n in nmt:
        text = open(f"{os.path.dirname(sys.argv[1])}/{n}.nmt-diff.txt").read()
        growth = {}
        for cat in ("Total", "Code", "Class", "Metaspace", "Thread", "Other"):
            m = re.search(rf"^-?\s*{cat}[: ].*?committed=\d+KB ([+-]\d+)KB", text, re.M)
            growth[cat] = int(m.group(1)) / 1024 if m else 0.0
        rss = (at[("end", n)][0] - at[("start", n)][0]) / 1024
        print(f"  {n}: RSS {rss:+.1f}, NMT total {growth['Total']:+.1f} (code cache {growth['Code']:+.1f}, classes and metaspace {growth['Class'] + growth['Metaspace']:+.1f},"
              f" threads {growth['Thread']:+.1f}, other incl. direct buffers {growth['Other']:+.1f}), untracked {rss - growth['Total']:+.1f}")
if grew: print(f"\nFAIL: grew by more than 5% after warm-up: {', '.join(grew)}")
if load["failed"]: print(f"\nFAIL: {load['failed']} requests failed")
sys.exit(1 if grew or load["failed"] else 0)
PY
