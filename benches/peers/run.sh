#!/usr/bin/env bash
# The peers benchmark: dj, graphile-worker, pgqueuer and Ruby's delayed_job, the same small
# workloads, one PostgreSQL, one run, one table. Each peer installs itself into
# benches/peers/.scratch/ (npm, PyPI, Debian's packages); nothing is installed elsewhere but
# Debian's Ruby packages. Not part of CI: it takes minutes. Run from anywhere:
#
#   bash benches/peers/run.sh              # every system
#   bash benches/peers/run.sh dj pgqueuer  # some of them
#
# PostgreSQL at 127.0.0.1:5432 (user postgres, trust), each system in a database of its own.
set -euo pipefail
cd "$(dirname "$0")/../.."
systems=("$@")
[ ${#systems[@]} -gt 0 ] || systems=(dj graphile-worker pgqueuer delayed_job)
out=$(mktemp)
trap 'rm -f "$out"' EXIT

for system in "${systems[@]}"; do
    echo "== $system" >&2
    case "$system" in
        dj)
            cargo build --release --locked -p dj-benches --bin dj-bench >&2
            "${CARGO_TARGET_DIR:-target}/release/dj-bench" --runs 1 --results \
                --only single,bulk,workoff,workoff-default,pickup \
                | tee /dev/stderr | grep -E '^(RESULT|VERSION) ' >>"$out"
            ;;
        *)
            bash "benches/peers/$system/run.sh" | tee /dev/stderr | grep -E '^(RESULT|VERSION) ' >>"$out"
            ;;
    esac
done

python3 - "$out" "${systems[@]}" <<'PY'
import sys
path, systems = sys.argv[1], sys.argv[2:]
figures, notes, versions = {}, {}, {}
for line in open(path):
    words = line.split()
    if words[0] == "VERSION":
        versions[words[1]] = " ".join(words[2:])
        continue
    _, system, workload, value, unit = words[:5]
    figures[(workload, system)] = (float(value), unit)
    notes[(workload, system)] = " ".join(words[5:])
rows = ["single_enqueue", "bulk_enqueue", "workoff_default", "workoff_tuned",
        "pickup_p50_ms", "pickup_p99_ms"]
width = 18
print()
print("workload".ljust(22) + "".join(s.rjust(width) for s in systems))
print("-" * (22 + width * len(systems)))
for row in rows:
    cells = []
    for s in systems:
        v = figures.get((row, s))
        cells.append(("-" if v is None else (f"{v[0]:.2f} ms" if v[1] == "ms" else f"{v[0]:,.0f}/s")).rjust(width))
    print(row.ljust(22) + "".join(cells))
print()
for s in systems:
    print(f"{s}: {versions.get(s, '?')}")
    for (row, system), note in sorted(notes.items()):
        if system == s and note not in ("", "-"):
            print(f"  {row}: {note}")
PY
