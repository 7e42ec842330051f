#!/usr/bin/env bash
# Prints what the numbers were measured on: CPU, memory, kernel, toolchains, load.
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "kernel: $(uname -srm)"
lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|CPU max MHz|L2|L3|Hypervisor)' || true
echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
echo "rustc: $(rustc -V 2>/dev/null)"
echo "go: $(go version 2>/dev/null)"
echo "node: $(node --version 2>/dev/null)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
