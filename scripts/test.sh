#!/usr/bin/env bash
# Every test, in three tiers, so the whole run fits in minutes on 2 cores. Most tests wait on
# wall-clock runs (a Locust run of a few seconds against the emulator), so they run in four
# lanes side by side (separate pytest processes: Locust's gevent patching rules out
# pytest-xdist's worker threads); tests that assert wall-clock timing (marker `timing`) run
# alone after them; the real-vLLM tier runs last, on its own, with the one vLLM server it
# shares. Every tier runs even when an earlier one failed; the exit status says whether all
# passed. Extra arguments go to every pytest (e.g. -x, -k EXPR).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
LANES=(
  "tests/client tests/test_trace_replay.py"
  "tests/capacity tests/report"
  "tests/scenarios tests/web tests/reliability"
  "tests/core tests/emulator tests/backends tests/workload tests/timestamps
   tests/test_locustfiles_workload.py"
)
# a test folder or file no lane names would never run: refuse that
for t in tests/*/ tests/test_*.py; do
  t=${t%/}
  case "$t" in tests/vllm | tests/fixtures | tests/artifacts | tests/__pycache__) continue ;; esac
  case " ${LANES[*]//$'\n'/ } " in *" $t "*) ;; *) echo "scripts/test.sh: $t is in no lane" >&2; exit 2 ;; esac
done
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
rc=0
note() { # exit status of one pytest; 5 means it found nothing to run (an empty selection)
  if [ "$1" != 0 ] && [ "$1" != 5 ]; then rc=1; fi
}
echo "== ${#LANES[@]} lanes side by side: -m 'not timing'" >&2
pids=()
for i in "${!LANES[@]}"; do
  # shellcheck disable=SC2086  # a lane is a list of paths
  "$BIN/pytest" -q -p no:cacheprovider -m "not timing" ${LANES[$i]} "$@" >"$logs/$i" 2>&1 &
  pids+=($!)
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"
  r=$?
  echo "== lane $((i + 1)): ${LANES[$i]//$'\n'/ } (exit $r)"
  cat "$logs/$i"
  note "$r"
done
echo "== timing tests, alone" >&2
"$BIN/pytest" -q -p no:cacheprovider -m timing --ignore=tests/vllm "$@"
note $?
echo "== real vLLM tier" >&2
"$BIN/pytest" -q -p no:cacheprovider tests/vllm "$@"
note $?
exit "$rc"
