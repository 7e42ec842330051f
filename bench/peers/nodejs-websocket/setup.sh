#!/usr/bin/env bash
# Installs npm nodejs-websocket@1.7.2 into $BENCH_TMP/nodejs-websocket; our server.js stays here.
source "$(dirname "$0")/../common.sh"
npm_setup nodejs-websocket nodejs-websocket@1.7.2
