#!/usr/bin/env bash
# The CPU quickstart: set up the environment, then train the local tiny model
# (SFT on expert trajectories, then RL) and print held-out success before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/agentropy train experiment=quickstart "$@"
