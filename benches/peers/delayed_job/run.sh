#!/usr/bin/env bash
# Ruby's delayed_job (ActiveRecord backend) through the peers' workloads, on PostgreSQL at
# 127.0.0.1:5432 (user postgres, trust), database peers_delayed_job (dropped and recreated).
# Installs Debian's ruby, ruby-delayed-job-active-record and ruby-pg if missing (needs root).
# Prints RESULT/VERSION lines on stdout; everything else goes to stderr.
#
#   bash benches/peers/delayed_job/run.sh
#
# Sizes can be overridden for a quick try: SINGLE=200 BULK=500 WORKOFF=500 PICKUP=20 ...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
scratch="$root/benches/peers/.scratch/delayed_job"
mkdir -p "$scratch"
started=$(date +%s)

missing=()
for pkg in ruby ruby-delayed-job-active-record ruby-pg; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "[delayed_job] installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing[@]}" >&2 \
        || { apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2; }
fi

PEERS_DJ_SCRATCH="$scratch" ruby "$here/bench.rb"
echo "[delayed_job] done in $(($(date +%s) - started)) s" >&2
