#!/usr/bin/env bash
# Reruns every study whose records are published under docs/results/ (README, "Results"),
# each from its study file, through the sweep engine:
#
#   bash experiments/reproduce.sh                      # every study, in order
#   bash experiments/reproduce.sh greff_adding_T100    # one study
#   BACKEND="--backend=ray" bash experiments/reproduce.sh   # any sweep flag, e.g. a cluster
#
# Each study trains into runs/<study>/ (one directory per cell under runs/<study>/cells/)
# and resumes where it stopped if killed: running the same command again retries what
# failed and never retrains a finished cell. When a study is done the sweep prints its
# table; `python -m experiments.compare --workdir=docs/results/<study>` prints the
# published one. The protocol of each study is in the docstring of its study file,
# experiments/studies/<study>.py.
set -euo pipefail
cd "$(dirname "$0")/.."

STUDIES=(default_adding_T50 greff_adding_T100 greff_copy_T100 greff_adding_T200 chrono_copy_T200
         indrnn_adding_T1000 greff_adding_T100_tuned state_tracking copy_T100_50k
         chrono_copy_T500 indrnn_adding_T1000_li chrono_copy_T500_h128 state_tracking_30k)

if [[ $# -eq 0 ]]; then set -- "${STUDIES[@]}"; fi
for name in "$@"; do
  if [[ ! -f "experiments/studies/$name.py" ]]; then
    echo "unknown study $name; known: ${STUDIES[*]}" >&2
    exit 2
  fi
done
for name in "$@"; do
  # shellcheck disable=SC2086
  python -m experiments.sweep --study="experiments/studies/$name.py" --workdir="runs/$name" ${BACKEND:-}
done
