#!/usr/bin/env bash
# A Faster R-CNN (eager: detector_model.py + a state dict) with the built-in object_detector handler.
# Needs torch, torchvision and Pillow for $MAR_PYTHON (default python3).
cd "$(dirname "$0")"
source ../common.sh
"$MAR_PYTHON" build_model.py "$OUT"
archive --model-name detector --version 1.0 --model-file detector_model.py --serialized-file "$OUT/detector.pt" \
  --extra-files "$OUT/index_to_name.json" --handler object_detector
predict detector street_1.jpg street_2.jpg street_3.jpg street_4.jpg
serve detector not_an_image.jpg street_1.jpg street_2.jpg street_3.jpg street_4.jpg
