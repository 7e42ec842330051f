#!/usr/bin/env bash
# The same release binary as the wschat peer.
exec "$(dirname "$0")/../wschat/setup.sh"
