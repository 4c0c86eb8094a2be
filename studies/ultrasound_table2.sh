#!/bin/sh
# Issue 43: the SGSCN paper's Table 2 methods on both shared ultrasound sources, every
# protocol, seeds 0-2: seed 0 of both sources first (BUS_UC, then BUSI), then SGSCN under the paper's protocol
# (studies/ultrasound_protocol.sh), then seeds 0-2. Resumable: rerun the same script and
# each finished case is kept (a case whose object was found under another object-step
# version has its object found again). Run from the repository root:
#   nohup setsid nice -n 15 sh studies/ultrasound_table2.sh > runs/us43_table2.log 2>&1 &
set -e
METHODS=kmeans:5,kmeans:6,sgscn,iic,deepcluster,cuts
busi() {
  python -m experiments.reproduce_tables --dataset ultrasound \
    --data_dir ../shared/data/ultrasound_busi --mask_pattern '{stem}_mask.png' \
    --noablation --out_dir runs/us43_busi --methods "$METHODS" --seeds "$1"
}
bus_uc() {
  python -m experiments.reproduce_tables --dataset ultrasound \
    --data_dir ../shared/data/ultrasound \
    --noablation --out_dir runs/us43_bus_uc --methods "$METHODS" --seeds "$1"
}
bus_uc 0
busi 0
sh studies/ultrasound_protocol.sh
busi 0,1,2
bus_uc 0,1,2
