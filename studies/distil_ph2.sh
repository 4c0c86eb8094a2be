#!/usr/bin/env bash
# Distil on PH2 (docs/DISTIL.md, "Measured"): every run of the page's PH2 tables, one after
# the other, each resumable (the same command again finishes what is missing; a finished
# folder only re-reports). Run niced from the repository root:
#
#   nohup setsid nice -n 10 bash studies/distil_ph2.sh > runs/distil/logs/queue_ph2.log 2>&1 &
#
# Stages (the first argument, default all): teachers, seeds, halves, vote, tta, ablations.
set -u
PH2=../shared/data/PH2
R=runs/distil/ph2
LOGS=runs/distil/logs
mkdir -p "$LOGS"
seg() {   # seg OUT_DIR ARGS...: one run, logged beside the others
  local out=$1; shift
  echo "$(date +%H:%M:%S) start $out: $*"
  python -m experiments.segment --out_dir "$out" "$@" > "$LOGS/$(echo "$out" | tr / _).log" 2>&1
  local rc=$?
  echo "$(date +%H:%M:%S) done $out (exit $rc)"
}
stage=${1:-all}
want() { [ "$stage" = all ] || [ "$stage" = "$1" ]; }

if want teachers; then   # the teachers themselves, under the same runner (deterministic)
  seg $R/teacher_otsu_blue/seed0 --method otsu_blue --dataset ph2 --data_dir $PH2 --seed 0
  seg $R/teacher_vote/seed0 --method vote:kmeans:5+otsu_blue+chan_vese --dataset ph2 \
    --data_dir $PH2 --seed 0
fi
if want seeds; then      # the default student (teacher Otsu (blue)), seeds 0-2
  for s in 0 1 2; do
    seg $R/otsu_blue/seed$s --method distil --dataset ph2 --data_dir $PH2 --seed $s
  done
fi
if want halves; then     # fitted on one fold, applied to the other (both ways), seed 0
  python -m studies.distil_folds $PH2 runs/distil/ph2_folds
  for f in A B; do
    o=$([ $f = A ] && echo B || echo A)
    seg $R/halves/fit${f}_seg${f}_s0 --method distil --dataset ph2 \
      --data_dir runs/distil/ph2_folds/$f --seed 0
    seg $R/halves/fit${f}_seg${o}_s0 --method distil --dataset ph2 \
      --data_dir runs/distil/ph2_folds/$o --seed 0 --fitted_from $R/halves/fit${f}_seg${f}_s0
  done
fi
if want vote; then       # a vote teacher, with and without confidence weighting, seed 0
  V=vote:kmeans:5+otsu_blue+chan_vese
  seg $R/vote/seed0 --method "distil:teacher=$V" --dataset ph2 --data_dir $PH2 --seed 0
  seg $R/vote_noconf/seed0 --method "distil:teacher=$V,confidence=false" --dataset ph2 \
    --data_dir $PH2 --seed 0
fi
if want tta; then        # the fitted students again, averaged over 4 flips (no refit)
  for s in 0 1 2; do
    seg $R/otsu_blue_tta/seed$s --method distil:tta=flips --dataset ph2 --data_dir $PH2 \
      --seed $s --fitted_from $R/otsu_blue/seed$s
  done
fi
if want ablations; then  # no augmentation; two rounds (seed 0)
  seg $R/noaug/seed0 --method distil:augment=false --dataset ph2 --data_dir $PH2 --seed 0
  seg $R/rounds2/seed0 --method distil:rounds=2 --dataset ph2 --data_dir $PH2 --seed 0
fi
echo "$(date +%H:%M:%S) queue done ($stage)"
