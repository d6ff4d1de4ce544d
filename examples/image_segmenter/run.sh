#!/usr/bin/env bash
# LR-ASPP MobileNetV3 (TorchScript, random weights) with the built-in image_segmenter handler.
# Needs torch, torchvision and Pillow for $MAR_PYTHON (default python3). Each answer is ~5 MB of JSON.
cd "$(dirname "$0")"
source ../common.sh
"$MAR_PYTHON" build_model.py "$OUT"
archive --model-name segmenter --version 1.0 --serialized-file "$OUT/segmenter.pt" --handler image_segmenter
predict segmenter scene_1.jpg scene_2.jpg scene_3.jpg scene_4.jpg
serve segmenter not_an_image.jpg scene_1.jpg scene_2.jpg scene_3.jpg scene_4.jpg
