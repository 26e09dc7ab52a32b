#!/usr/bin/env bash
# Runs the system on this machine with the built-in default model (a small synthetic Mixtral-shaped checkpoint,
# generated on first use under models/default). Until the services land (issue #3) this runs the runtime's CLI:
# it describes the model and generates from a chat prompt. Usage: ./run.sh ["your prompt"]
set -euo pipefail
cd "$(dirname "$0")"
MODEL="${MOE_MODEL:-models/default}"
if [ ! -f "$MODEL/config.json" ]; then
  bin/moe synth --arch mixtral --size small --dtype bf16 --out "$MODEL"
fi
bin/moe inspect "$MODEL"
echo
bin/moe generate "$MODEL" --chat --prompt "${1:-Hello! Which experts will answer me?}" --max-new-tokens 48 \
  --temperature 0.8 --top-p 0.95 --seed 7
