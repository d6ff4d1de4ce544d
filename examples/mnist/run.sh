#!/usr/bin/env bash
# An eager model (mnist.py + a state dict) with a custom BaseHandler subclass (mnist_handler.py), as in
# TorchServe's MNIST example. Needs torch, torchvision and Pillow for $MAR_PYTHON (default python3).
cd "$(dirname "$0")"
source ../common.sh
"$MAR_PYTHON" build_model.py "$OUT"
archive --model-name mnist --version 1.0 --model-file mnist.py --serialized-file "$OUT/digit_net.pt" \
  --handler mnist_handler.py
predict mnist digit_1.png digit_2.png digit_3.png digit_4.png
serve mnist not_an_image.png digit_1.png digit_2.png digit_3.png digit_4.png
