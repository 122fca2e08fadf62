#!/usr/bin/env bash
# The README's test command beside a CPU hog: HOGS processes that spin (default 2, which doubles
# the load of a 2-core laptop), killed when the suite ends however it ends.
#   bash benchmarks/busy_suite.sh [HOGS]
set -u
cd "$(dirname "$0")/.."
hogs=()
cleanup() { [ ${#hogs[@]} -gt 0 ] && kill "${hogs[@]}" 2>/dev/null; }
trap cleanup EXIT INT TERM
for _ in $(seq "${1:-2}"); do
  python -c "while True: pass" &
  hogs+=($!)
done
start=$(date +%s)
python -m pytest --nbmake tests notebooks
status=$?
echo "the suite beside ${1:-2} hogs: $(( $(date +%s) - start )) s, exit status $status"
exit $status
