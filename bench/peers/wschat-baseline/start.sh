#!/usr/bin/env bash
# wschat at BASELINE_REV (or, without it, the commit setup.sh built last), for before/after
# measurements of a change: the same flags as bench/peers/wschat/start.sh.
source "$(dirname "$0")/../common.sh"
dir="$BENCH_TMP/wschat-baseline"
if [ -n "${BASELINE_REV:-}" ]; then
  sha=$(git -C "$REPO" rev-parse --verify --quiet "$BASELINE_REV^{commit}") ||
    { echo "wschat-baseline: BASELINE_REV=$BASELINE_REV is not a commit in $REPO" >&2; exit 1; }
elif [ -f "$dir/sha" ]; then
  sha=$(cat "$dir/sha")
else
  echo "wschat-baseline: nothing built; run BASELINE_REV=REV bench/peers/wschat-baseline/setup.sh" >&2
  exit 1
fi
bin="$dir/bin/wschat-$sha"
[ -x "$bin" ] ||
  { echo "wschat-baseline: no binary for ${sha:0:12}; run its setup.sh with BASELINE_REV set" >&2; exit 1; }
echo "wschat-baseline: commit $sha" >&2
exec "$bin" --bind 127.0.0.1 --port "$1" --rate-limit 0 --max-clients 20000
