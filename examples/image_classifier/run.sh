#!/usr/bin/env bash
# resnet18 (TorchScript, random weights) with the built-in image_classifier handler, as a TorchServe user archives it.
# Needs torch, torchvision and Pillow for $MAR_PYTHON (default python3); Debian: apt-get install python3-torch python3-torchvision python3-pil
cd "$(dirname "$0")"
source ../common.sh
"$MAR_PYTHON" build_model.py "$OUT"
archive --model-name resnet18 --version 1.0 --serialized-file "$OUT/resnet18.pt" \
  --extra-files "$OUT/index_to_name.json" --handler image_classifier
predict resnet18 image_1.jpg image_2.jpg image_3.jpg image_4.jpg
serve resnet18 not_an_image.jpg image_1.jpg image_2.jpg image_3.jpg image_4.jpg
