#!/usr/bin/env bash
# The README's test command beside a CPU hog: HOGS processes that spin (default 2, which doubles
# the load of a 2-core laptop), killed when the suite ends however it ends.
#   bash benchmarks/busy_suite.sh [HOGS | --smoke]      (--smoke: one hog beside one small test file)
set -u
cd "$(dirname "$0")/.."
command=(python -m pytest --nbmake tests notebooks)
if [ "${1:-}" = "--smoke" ]; then
  set -- 1
  command=(python -m pytest -q -p no:cacheprovider tests/test_seeds.py)
fi
hogs=()
cleanup() { [ ${#hogs[@]} -gt 0 ] && kill "${hogs[@]}" 2>/dev/null; }
trap cleanup EXIT INT TERM
for _ in $(seq "${1:-2}"); do
  python -c "while True: pass" &
  hogs+=($!)
done
start=$(date +%s)
"${command[@]}"
status=$?
echo "the suite beside ${1:-2} hogs: $(( $(date +%s) - start )) s, exit status $status"
exit $status
