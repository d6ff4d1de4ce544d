"""The image segmenter example: torchvision's LR-ASPP MobileNetV3 (21 classes) with random weights, saved as
TorchScript, served by the built-in `image_segmenter` handler (TorchServe's examples/image_segmenter, smaller and
without the download).

    python3 build_model.py [OUT_DIR]    (default: ./build)

Writes segmenter.pt, inputs/*.jpg and expected.json: for each image, per pixel of the 224x224 crop the most
likely class (as a float) and its probability, from calling the model directly.
"""

import os
import sys

import torch
from PIL import Image
from torchvision.models.segmentation import lraspp_mobilenet_v3_large

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import _build  # noqa: E402

TRANSFORM = _build.IMAGENET_TRANSFORM


def build(out):
    torch.manual_seed(0)
    model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21).eval()
    scripted = torch.jit.script(model)
    torch.jit.save(scripted, os.path.join(out, "segmenter.pt"))
    expected = {}
    for i in range(4):
        name = "scene_{}.jpg".format(i + 1)
        path = os.path.join(out, "inputs", name)
        _build.noise_image(300 + i, (300, 260)).save(path, quality=90)
        with torch.inference_mode():
            scores = torch.softmax(scripted(TRANSFORM(Image.open(path)).unsqueeze(0))["out"], dim=1)
        best = torch.max(scores, dim=1)
        expected[name] = torch.stack([best.indices.float(), best.values], dim=3)[0].tolist()
    _build.write_bad_input(out)
    _build.write_json(os.path.join(out, "expected.json"), expected)


if __name__ == "__main__":
    build(_build.out_dir(sys.argv, "build"))
