#!/usr/bin/env bash
# Runs the whole test suite (unit, differential kernel, reference-comparison and CLI tests, the placement planner, the
# Helm chart rendered and validated, and the system tests: services as real processes, the k8s/ reference manifests,
# and a real Prometheus server evaluating the autoscalers' queries under load).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/find-jdk.sh
# The reference checker (tools/reference) is numpy; install Debian's numpy if no python3 on this machine has it.
if ! python3 -c "import numpy" 2>/dev/null && ! /usr/bin/python3 -c "import numpy" 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing python3-numpy for the reference checker..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-numpy) >&2
  else
    echo "error: the tests need python3 with numpy (tools/reference); install python3-numpy" >&2
    exit 1
  fi
fi
# The Helm chart tests run promtool (Debian's prometheus package) on every PromQL the chart ships, and Node.js for
# the manifest validator (helm/validate); the system tests run the Prometheus server itself (same package) against
# the services under load. Install them when running as root; otherwise fail here, clearly.
need_pkgs=()
command -v promtool >/dev/null && command -v prometheus >/dev/null || need_pkgs+=(prometheus)
command -v node >/dev/null && command -v npm >/dev/null || need_pkgs+=(nodejs npm)
# The internal-TLS tests make their certificates with openssl.
command -v openssl >/dev/null || need_pkgs+=(openssl)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need_pkgs[*]} for the Helm chart, Prometheus and TLS tests..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}") >&2
  else
    echo "error: the tests need promtool and prometheus (Debian: prometheus), Node.js with npm and openssl; missing: ${need_pkgs[*]}" >&2
    exit 1
  fi
fi
./mvnw -B verify "$@"
