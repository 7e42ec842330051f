#!/usr/bin/env bash
# wschat at an older revision, for before/after measurements of a change (BENCHMARKS.md):
# builds BASELINE_REV's release binary from `git archive`, outside this repository, once per
# commit, and records which commit start.sh runs.
source "$(dirname "$0")/../common.sh"
if [ -z "${BASELINE_REV:-}" ]; then
  echo "wschat-baseline: set BASELINE_REV to the git revision to compare against (e.g. BASELINE_REV=c54c012)" >&2
  exit 1
fi
sha=$(git -C "$REPO" rev-parse --verify --quiet "$BASELINE_REV^{commit}") ||
  { echo "wschat-baseline: BASELINE_REV=$BASELINE_REV is not a commit in $REPO" >&2; exit 1; }
dir="$BENCH_TMP/wschat-baseline"
bin="$dir/bin/wschat-$sha"
if [ ! -x "$bin" ]; then
  src="$dir/src/$sha"
  if [ ! -f "$src/Cargo.toml" ]; then
    rm -rf "$src.tmp" && mkdir -p "$src.tmp"
    git -C "$REPO" archive "$sha" | tar -x -C "$src.tmp"
    rm -rf "$src" && mv "$src.tmp" "$src"
  fi
  echo "wschat-baseline: building ${sha:0:12} (release; the first build takes a few minutes)" >&2
  # One target folder for every baseline: dependencies built once; the binary is copied out
  # per commit, since the next baseline's build overwrites target/release/wschat.
  (cd "$src" && CARGO_TARGET_DIR="$dir/target" cargo build --release --quiet -p wschat)
  mkdir -p "$dir/bin"
  cp "$dir/target/release/wschat" "$bin.tmp" && mv "$bin.tmp" "$bin"
fi
echo "$sha" > "$dir/sha"
