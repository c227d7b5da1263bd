#!/usr/bin/env bash
# Reproduces the README's literature tables (Arjovsky et al. 2016; Tallec & Ollivier 2018)
# at a budget a 2-core CPU can afford. Each command resumes where it stopped if killed.
set -euo pipefail
cd "$(dirname "$0")/.."
run="python -m experiments.run"

# Adding problem, T = 100 and 200: gated cells solve it, the tanh RNN stays near 1/6.
$run --task=adding --length=100 --variants=lstm,peephole,cifg,gru,rnn --seeds=3 \
     --steps=2500 --batch_size=50 --eval_every=250 --workdir=runs/adding
# Copy memory, T = 100: the LSTM beats the memoryless baseline 0.1733.
$run --task=copy --length=100 --variants=lstm,gru,rnn --seeds=3 \
     --steps=4000 --batch_size=20 --eval_every=250 --workdir=runs/copy
# Copy memory, T = 200: chrono initialisation against the default.
$run --task=copy --length=200 --variants=lstm --seeds=3 \
     --steps=4000 --batch_size=20 --eval_every=250 --workdir=runs/copy
$run --task=copy --length=200 --variants=lstm --seeds=3 --init=chrono \
     --steps=4000 --batch_size=20 --eval_every=250 --workdir=runs/copy
# The same chrono comparison at T = 100, where 4000 steps are enough to see a difference.
$run --task=copy --length=100 --variants=lstm --seeds=3 --init=chrono \
     --steps=4000 --batch_size=20 --eval_every=250 --workdir=runs/copy
$run --task=adding --length=200 --variants=lstm,peephole,cifg,gru,rnn --seeds=2 \
     --steps=3000 --batch_size=50 --eval_every=250 --workdir=runs/adding

python -m experiments.compare --workdir=runs/adding
python -m experiments.compare --workdir=runs/copy
