#!/usr/bin/env bash
# Runs the Autobahn TestSuite (517 cases, via the `kosoku` runner from PyPI) against wschat's
# /echo and fails on any FAILED case or unclean close. Usage: tests/autobahn/run.sh [OUTDIR]
# Needs: python3 with venv; builds wschat in release mode.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-target/autobahn}
venv=target/autobahn-venv
if [ ! -x "$venv/bin/kosoku" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "kosoku==0.1.0"
fi
cargo build --release --locked --quiet
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/release/wschat --bind 127.0.0.1 --port "$port" --log-level warn &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
rm -rf "$out"
# kosoku exits 1 whenever a case is UNIMPLEMENTED (compression), so judge by the report.
"$venv/bin/kosoku" -p 2 -o "$out" "ws://127.0.0.1:$port/echo" > "$out.log" 2>&1 || true
python3 tests/autobahn/summarize.py "$out/index.json"
