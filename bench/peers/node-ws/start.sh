#!/usr/bin/env bash
source "$(dirname "$0")/../common.sh"
node_start node-ws "$1"
