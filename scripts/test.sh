#!/usr/bin/env bash
# Install the test dependencies and run the whole test suite (slow tests included).
# Extra arguments go to pytest, e.g. scripts/test.sh -k data -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# pytest exits 5 when it collected nothing; that is a failure here, as is any non-zero code.
exec .venv/bin/python -m pytest "$@"
