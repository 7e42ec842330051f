#!/usr/bin/env bash
# Builds our gorilla-style hub against Debian's packages (GOPATH mode, no module download):
#   apt-get install -y golang-go golang-github-gorilla-websocket-dev
source "$(dirname "$0")/../common.sh"
dir="$BENCH_TMP/go-hub"
mkdir -p "$dir"
cd "$REPO/bench/peers/go-hub"
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$dir/cache" \
  go build -o "$dir/go-hub" main.go hub.go client.go
