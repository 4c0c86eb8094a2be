#!/usr/bin/env bash
# Distil beyond PH2 (docs/DISTIL.md, "Measured"): breast ultrasound (BUSI, BUS_UC, each
# fitted on one source and applied to the other), lung CT and DRIVE, seed 0, each run
# resumable. Teacher k-means k = 5 (the ultrasound page's suggestion; the data set's object
# prior is the runner's), no quarter turns on ultrasound (the skin is at the top). Run niced
# from the repository root:
#
#   nohup setsid nice -n 10 bash studies/distil_more.sh > runs/distil/logs/queue_more.log 2>&1 &
set -u
D=../shared/data
R=runs/distil
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
BUSI=(--dataset ultrasound --data_dir $D/ultrasound_busi --mask_pattern '{stem}_mask.png')
BUSUC=(--dataset ultrasound --data_dir $D/ultrasound)
US="distil:teacher=kmeans:5,rotations=false"

if want ultrasound; then
  seg $R/us/busi_teacher_kmeans5/seed0 --method kmeans:5 "${BUSI[@]}" --seed 0
  seg $R/us/busuc_teacher_kmeans5/seed0 --method kmeans:5 "${BUSUC[@]}" --seed 0
  seg $R/us/busi/seed0 --method "$US" "${BUSI[@]}" --seed 0
  seg $R/us/busuc/seed0 --method "$US" "${BUSUC[@]}" --seed 0
  seg $R/us/busuc_from_busi/seed0 --method "$US" "${BUSUC[@]}" --seed 0 \
    --fitted_from $R/us/busi/seed0
  seg $R/us/busi_from_busuc/seed0 --method "$US" "${BUSI[@]}" --seed 0 \
    --fitted_from $R/us/busuc/seed0
fi
if want lung; then       # 4 slices: the two lungs are the object
  seg $R/lung/teacher_kmeans5/seed0 --method kmeans:5 --dataset lung_ct \
    --data_dir $D/lung_ct --seed 0
  seg $R/lung/seed0 --method distil:teacher=kmeans:5,keep_pieces=2 --dataset lung_ct \
    --data_dir $D/lung_ct --seed 0
fi
if want drive; then      # 5 retinas: vessels, no cleaning
  seg $R/drive/teacher_kmeans5/seed0 --method kmeans:5 --dataset drive \
    --data_dir $D/DRIVE --seed 0
  seg $R/drive/seed0 --method distil:teacher=kmeans:5,keep_pieces=0,fill_holes=false \
    --dataset drive --data_dir $D/DRIVE --seed 0
fi
echo "$(date +%H:%M:%S) queue done ($stage)"
