#!/usr/bin/env bash
source "$(dirname "$0")/../common.sh"
exec "$BENCH_TMP/go-hub/go-hub" -addr "127.0.0.1:$1"
