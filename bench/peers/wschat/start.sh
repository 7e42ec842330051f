#!/usr/bin/env bash
# wschat as the benchmark runs it: loopback, rate limit off, room for 5,000+ clients.
source "$(dirname "$0")/../common.sh"
exec "$REPO/target/release/wschat" --bind 127.0.0.1 --port "$1" --rate-limit 0 --max-clients 20000
