#!/usr/bin/env bash
source "$(dirname "$0")/../common.sh"
node_start nodejs-websocket "$1"
