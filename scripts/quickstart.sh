#!/usr/bin/env bash
# The CPU quickstart: set up the environment, then ask this suite's first question on the local
# tiny model (TextWorldExpress coin): does RL beat more supervised training on the same
# demonstrations? One seed of bench/learning.py: an SFT start, the same model after RL (EPO over
# GRPO), and SFT continued for the RL run's wall time (the matched baseline), all three on the
# same 100 held-out games; it prints the three rows with paired 95% bootstrap intervals.
# Runs go to runs/quickstart/ (ordinary run folders: `agentropy view runs/quickstart/epo_seed0`);
# a run already there is not repeated. Extra key=value arguments reach every run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/python bench/learning.py --setting scarce --learners epo --seeds 0 --iterations 15 \
    --out runs/quickstart --results runs/quickstart "$@"
echo "One seed on 100 games rarely separates the three; bench/results/learning.md has 3 seeds per setting."
