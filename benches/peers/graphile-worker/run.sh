#!/usr/bin/env bash
# graphile-worker's side of dj's peers benchmark (see README.md here). Installs the pinned
# graphile-worker with npm into benches/peers/.scratch/graphile-worker/ (never committed), then
# runs bench.mjs, which drops and recreates the database peers_graphile on the PostgreSQL at
# 127.0.0.1:5432 (user postgres) and prints RESULT/VERSION lines on stdout. Run from anywhere:
#
#   bash benches/peers/graphile-worker/run.sh
#
# Sizes can be changed, e.g. PEERS_GRAPHILE_WORKOFF=20000 for a quick try (see bench.mjs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
scratch="$here/../.scratch/graphile-worker"
mkdir -p "$scratch"
cp "$here/package.json" "$here/package-lock.json" "$here/bench.mjs" "$scratch/"
cd "$scratch"
echo "graphile-worker: npm install in $scratch" >&2
npm install --no-audit --no-fund >&2
start=$SECONDS
node bench.mjs
echo "graphile-worker: bench.mjs took $((SECONDS - start)) s" >&2
