# Sourced by each peer's setup.sh and start.sh: where the repository is and where peers are
# installed or built (never inside the repository).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH_TMP="${BENCH_TMP:-/tmp/wschat-peers}"
mkdir -p "$BENCH_TMP"

# npm_setup PEER PACKAGE@VERSION: installs the package into $BENCH_TMP/PEER once.
npm_setup() {
  local dir="$BENCH_TMP/$1" name="${2%@*}"
  [ -d "$dir/node_modules/$name" ] ||
    npm install --silent --no-audit --no-fund --prefix "$dir" "$2"
}

# node_start PEER PORT: runs bench/peers/PEER/server.js with that peer's node_modules.
node_start() {
  NODE_PATH="$BENCH_TMP/$1/node_modules" exec node "$REPO/bench/peers/$1/server.js" "$2"
}
