#!/usr/bin/env bash
# pgqueuer on dj's peer workloads: bash benches/peers/pgqueuer/run.sh
# Env: PYTHON (default python3), PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres),
#      PGQ_BENCH_DB (peers_pgqueuer, dropped and recreated on every run).
# Extra arguments go to bench.py (e.g. --workoff-n 20000, --only single,bulk).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
scratch="$root/benches/peers/.scratch/pgqueuer"
python="${PYTHON:-python3}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
db="${PGQ_BENCH_DB:-peers_pgqueuer}"
dsn="postgresql://$PGUSER@$PGHOST:$PGPORT/$db"
start=$(date +%s)

# 1. virtualenv with the pinned packages
mkdir -p "$scratch"
if [ ! -x "$scratch/venv/bin/python" ]; then
  "$python" -m venv "$scratch/venv"
fi
venv_py="$scratch/venv/bin/python"
"$venv_py" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"

# 2. a fresh database, and pgqueuer's schema installed the documented way (`pgq install`,
#    which reads the PG* variables)
"$venv_py" - "$db" <<'EOF'
import asyncio, os, sys
import asyncpg

async def main(db: str) -> None:
    conn = await asyncpg.connect(database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{db}"')
    finally:
        await conn.close()

asyncio.run(main(sys.argv[1]))
EOF
PGDATABASE="$db" "$scratch/venv/bin/pgq" install >&2

# 3. the workloads
"$venv_py" "$here/bench.py" --dsn "$dsn" "$@"

echo "# pgqueuer run.sh took $(( $(date +%s) - start )) s" >&2
