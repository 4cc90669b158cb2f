#!/bin/bash
# OpenVINO's benchmark_app -hint throughput against the suite's LoadGen Offline, same IRs, alternating.
set -u
cd /tmp/vs
FP32=$(ls -dt /tmp/vs/.resnetbench-cache/artifacts/openvino-resnet50-fp32-* | head -1)/model.xml
INT8=$(ls -dt /tmp/vs/.resnetbench-cache/artifacts/openvino-resnet50-int8-* | head -1)/model.xml
for round in 1 2 3; do
  for ir in "$FP32" "$INT8"; do
    echo "=== round $round benchmark_app $(basename $(dirname $ir))"
    /work/main/.venv/bin/benchmark_app -m "$ir" -d CPU -hint throughput -infer_precision f32 -t 15 -shape "[1,3,112,112]" 2>&1 | grep -E "Throughput|Number of|NUM_STREAMS|nireq|Median|Count" | head -8
  done
  echo "=== round $round suite"
  /work/main/.venv/bin/python -m pytest -p no:cacheprovider --matrix ov.yaml -m scenarios -k openvino --results suite-$round.json -q 2>&1 | tail -1
  python3 -c "
import json; d=json.load(open('suite-$round.json'))
for c in d['cases']:
  s=c['scenarios']; print(c['id'], 'offline', s['offline'].get('samples_per_s'), 'kept', s['kept'], 'splits', [(x['streams'],x['threads'],x['offline_samples_per_s']) for x in s['splits']])"
done
