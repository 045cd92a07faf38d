#!/usr/bin/env bash
# Install the test dependencies and run the whole test suite (slow tests included), then the
# vLLM tests in their own environment (.venv-vllm, built by `scripts/setup.sh --vllm`).
# Extra arguments go to pytest, e.g. scripts/test.sh -k data -x; with arguments the vLLM part
# runs only if AGENTROPY_VLLM_TESTS=1. AGENTROPY_VLLM_TESTS=0 never runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

VLLM_TESTS="${AGENTROPY_VLLM_TESTS:-}"
if [ -z "$VLLM_TESTS" ]; then
  VLLM_TESTS=$([ "$#" = 0 ] && echo 1 || echo 0)
fi

# pytest exits 5 when it collected nothing; that is a failure here, as is any non-zero code.
rc=0
.venv/bin/python -m pytest -m "not vllm" "$@" || rc=$?

if [ "$VLLM_TESTS" = 1 ]; then
  scripts/setup.sh --vllm
  vrc=0
  "${VENV_VLLM:-.venv-vllm}/bin/python" -m pytest -m vllm "$@" || vrc=$?
  # A selection without vLLM tests collects nothing there (5); that is fine.
  if [ "$vrc" != 0 ] && [ "$vrc" != 5 ]; then rc=$vrc; fi
else
  echo "[test] vLLM tests not run (AGENTROPY_VLLM_TESTS=1 runs them in .venv-vllm)"
fi
exit "$rc"
