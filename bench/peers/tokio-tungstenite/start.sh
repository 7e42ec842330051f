#!/usr/bin/env bash
# The example prints a line for every message it receives (unchanged): its stdout goes to
# /dev/null, as a discarded log would; its errors still reach run.sh's log.
source "$(dirname "$0")/../common.sh"
exec "$BENCH_TMP/tokio-tungstenite/target/release/server" "127.0.0.1:$1" > /dev/null
