#!/usr/bin/env bash
# wschat with `--metrics off`: no /metrics and no snapshot published (the counters are plain
# adds either way), with the wschat peer's flags. Compare with wschat-metrics (BENCHMARKS.md).
source "$(dirname "$0")/../common.sh"
exec "$REPO/target/release/wschat" --bind 127.0.0.1 --port "$1" --rate-limit 0 --max-clients 20000 \
  --metrics off
