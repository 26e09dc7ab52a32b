# Sourced by run.sh and scripts/bench-soak.sh: the JVM options each service runs with on one machine, sized for the
# default model (models/default, 30 MiB of weights) with the same split as the chart (helm/README.md, "Memory"):
#   heap (-Xmx)                    requests, responses, the router's KV cache (moe.router.batching.kv-cache-memory,
#                                  256M by default, at most 70% of the heap) and per-step buffers
#   direct (MaxDirectMemorySize)   gRPC/Netty buffers
#   outside both                   metaspace, code cache, threads; the memory-mapped weights (page cache) and the
#                                  copies a pod makes at load (quantized or transposed experts: native memory that
#                                  no JVM flag caps), which grow with the model, not with the heap
# The GC is named so that the JVM does not choose one from the machine's cores and memory; the heap is committed and
# touched whole at start (-Xms = -Xmx, AlwaysPreTouch), so the heap is resident from the start instead of creeping up
# for minutes as the young generation's pages are first used (BENCHMARKS.md, "Bounded memory: soak").
# moe_jvm_options SERVICE (gateway | router | expert) prints the options; MOE_<SERVICE>_HEAP overrides the heap
# (e.g. MOE_ROUTER_HEAP=4g for a larger KV cache) and MOE_JAVA_OPTS adds options to every service.
moe_jvm_options() {
  local heap direct
  case "$1" in
    gateway) heap="${MOE_GATEWAY_HEAP:-256m}" direct=64m ;;
    router) heap="${MOE_ROUTER_HEAP:-768m}" direct=256m ;;
    expert) heap="${MOE_EXPERT_HEAP:-256m}" direct=256m ;;
    *) echo "moe_jvm_options: unknown service $1" >&2; return 1 ;;
  esac
  echo "--add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED -XX:+UseParallelGC -Xms$heap -Xmx$heap -XX:+AlwaysPreTouch" \
    "-XX:MaxDirectMemorySize=$direct -XX:+ExitOnOutOfMemoryError ${MOE_JAVA_OPTS:-}"
}
