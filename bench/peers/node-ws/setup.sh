#!/usr/bin/env bash
# Installs npm ws@8 into $BENCH_TMP/node-ws; our server.js stays here.
source "$(dirname "$0")/../common.sh"
npm_setup node-ws ws@8
