#!/usr/bin/env bash
# Replays every golden set's recorded sweep (golden/<mode>/<model>/manifest.json) and gates it
# against the golden: bit-exact on the golden's device, fp32 elsewhere.
# Usage: scripts/check_goldens.sh [BIN_DIR] [OUT_DIR]   (default: target/debug, a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug}
out=${2:-$(mktemp -d)}
status=0
for manifest in golden/*/*/manifest.json; do
  set_dir=$(dirname "$manifest")
  name=${set_dir#golden/}
  mode=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mode"])' "$manifest")
  mapfile -t args < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["run"]))' "$manifest")
  runs="$out/${name//\//_}"
  echo "== golden $name: tracecheck ${args[*]}"
  "$bin/tracecheck" "${args[@]}" --out "$runs" --force
  if ! "$bin/tracecheck" analyze --mode "$mode" --traces-dir "$runs" --golden "$set_dir" \
      --gate PASS_EQUIV --output "$runs/report.md"; then
    echo "golden $name: FAILED (report: $runs/report.md)"
    status=1
  fi
done
exit $status
