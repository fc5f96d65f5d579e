#!/bin/sh
# Sandbox benchmark: RUN true overhead and gzip layer rate of a 300 MB RUN. Run as root.
# Usage: bench/sandbox/run.sh [N]
set -e
cd "$(dirname "$0")/../.."
exec cargo run --release -q -p rbuild-builder --example sandbox_bench -- "${1:-50}"
