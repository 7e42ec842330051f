#!/usr/bin/env bash
# Builds wschat (release) in this repository.
source "$(dirname "$0")/../common.sh"
cd "$REPO" && cargo build --release --quiet -p wschat
