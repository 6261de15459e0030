#!/usr/bin/env bash
# The benchmark table of issue 7 on the H200 (device tool), one size per verify_gpu run so that a timeout keeps
# the sizes already done: every MODES of ours next to the upstream code run the reference's way (eager), fps,
# p50/p99, peak memory, error against fp32 eager. SIZES, PRECISIONS, MODES choose the rows.
set -u
source dev/device_common.sh
for size in ${SIZES:-448x256 1280x720 1920x1080}; do
  python3 -m dev.verify_gpu --weights train_log/v4.0/flownet.pkl --videos .carry/videos --paper-code model \
    --out "$OUT/$size" --calls "${CALLS:-200}" --skip-checks --quality-configs "" --archs v4.0,paper \
    --sizes "$size" --precisions "${PRECISIONS:-fp16,bf16}" --modes "${MODES:-eager,graph,fast}" 2>&1 \
    | tee "$OUT/table-$size.log" | sed -n '/^## modes/,$p'
done
