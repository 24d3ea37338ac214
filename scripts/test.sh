#!/usr/bin/env bash
# Every test, in three tiers, so the whole run fits in minutes on 2 cores: most tests wait on
# wall-clock runs (a Locust run of a few seconds against the emulator), so they run side by
# side (pytest-xdist); tests that assert wall-clock timing run alone after them; the real-vLLM
# tier runs last, on its own, with the one vLLM server it shares. Every tier runs even when
# an earlier one failed; the exit status is the first failure's.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
WORKERS=${LOCUST_LLM_TEST_WORKERS:-3}
rc=0
run() {
  echo "== pytest $*" >&2
  "$BIN/pytest" -q -p no:cacheprovider "$@"
  local r=$?
  # 5: no tests collected (a tier can be empty where its tests do not exist)
  if [ "$r" != 0 ] && [ "$r" != 5 ] && [ "$rc" = 0 ]; then rc=$r; fi
}
run -n "$WORKERS" -m "not timing" --ignore=tests/vllm "$@"
run -m timing --ignore=tests/vllm "$@"
run tests/vllm "$@"
exit "$rc"
