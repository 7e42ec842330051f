#!/usr/bin/env bash
# wschat with metrics on and scraped: a loop fetches /metrics every second (fifteen times
# Prometheus' default scrape interval) for as long as the server answers, and logs how many
# scrapes it made. The wschat peer's flags otherwise; compare with wschat-nometrics.
source "$(dirname "$0")/../common.sh"
port="$1"
(
  sleep 1
  n=0
  while curl -sf -o /dev/null "http://127.0.0.1:$port/metrics"; do
    n=$((n + 1))
    sleep 1
  done
  echo "wschat-metrics: $n scrapes of /metrics" >&2
) &
exec "$REPO/target/release/wschat" --bind 127.0.0.1 --port "$port" --rate-limit 0 --max-clients 20000 \
  --metrics on
