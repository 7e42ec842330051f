#!/usr/bin/env bash
# The example prints a line per message: stdout goes to a file in run.sh, as any log does.
source "$(dirname "$0")/../common.sh"
exec "$BENCH_TMP/tokio-tungstenite/target/release/server" "127.0.0.1:$1"
