#!/usr/bin/env bash
# Install everything locust-llm's demo, tests and benchmarks need, on a fresh Debian machine.
# Idempotent: a second run only checks. System packages need root (apt-get); without root,
# missing ones are reported and the tests that need them skip.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v numactl >/dev/null 2>&1 || need+=(numactl)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${need[*]} (install them with apt-get as root);" \
         "tests that need them will skip" >&2
  fi
fi

stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[test]'
  touch "$stamp"
fi
# `locust -f FILE --help` lists the --llm-* options through locust_llm-help.pth; a wheel
# install puts it in site-packages, an editable one (pip install -e, above) does not
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cmp -s locust_llm-help.pth "$site/locust_llm-help.pth" || cp locust_llm-help.pth "$site/"
echo "setup: ready ($("$VENV/bin/python" --version), locust $("$VENV/bin/python" -c 'import locust; print(locust.__version__)'))"
