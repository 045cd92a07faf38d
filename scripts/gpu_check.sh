#!/usr/bin/env bash
# One short iteration of the ALFWorld GiGPO recipe on one CUDA GPU (scripts/gpu_check.py):
# peak GPU memory and seconds per phase, weight-sync time, fraction of weights changed.
#
#   scripts/gpu_check.sh                                   # Qwen/Qwen2.5-0.5B-Instruct from the hub
#   scripts/gpu_check.sh Qwen/Qwen2.5-1.5B-Instruct
#   scripts/gpu_check.sh /models/qwen2.5-1.5b algorithm.max_tokens_per_micro_batch=8192
#   scripts/gpu_check.sh --dry-run                         # CPU, tiny model: checks the script
#
# Uses the vLLM environment (.venv-vllm) when it exists, else .venv; PYTHON=... overrides.
# Expected to finish within 10 minutes on one modern GPU. Never run by the project (no GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
  PYTHON=.venv/bin/python
  [[ -x .venv-vllm/bin/python && " $* " != *" --dry-run "* ]] && PYTHON=.venv-vllm/bin/python
fi
exec "$PYTHON" scripts/gpu_check.py "$@"
