#!/usr/bin/env bash
# Runs the whole test suite (unit, differential kernel, reference-comparison and CLI tests).
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
./mvnw -B verify "$@"
