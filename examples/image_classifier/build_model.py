"""The image classifier example: torchvision's resnet18 with random weights, saved as TorchScript, served by
the built-in `image_classifier` handler (TorchServe's examples/image_classifier/resnet_18, without the download).

    python3 build_model.py [OUT_DIR]    (default: ./build)

Writes resnet18.pt, index_to_name.json, inputs/*.jpg (4 images and a broken one) and expected.json: for each
image, the top 5 classes and probabilities from calling the model directly with ImageNet's transform.
"""

import os
import sys

import torch
import torchvision
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import _build  # noqa: E402

TRANSFORM = _build.IMAGENET_TRANSFORM
TOPK = 5


def top5(model, path, mapping):
    with torch.inference_mode():
        probs = torch.softmax(model(TRANSFORM(Image.open(path)).unsqueeze(0)), dim=1)[0]
    values, classes = torch.topk(probs, TOPK + 1)
    # A near tie at the 5th place could swap with the 6th between two runs: such an image is not a fair test.
    margin = float(values[TOPK - 1] - values[TOPK])
    return {mapping[str(int(c))][-1]: float(v) for v, c in zip(values[:TOPK], classes[:TOPK])}, margin


def build(out):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    torch.jit.save(torch.jit.script(model), os.path.join(out, "resnet18.pt"))
    # TorchServe's index_to_name.json format: index -> [WordNet id, name]
    mapping = {str(i): ["n{:08d}".format(i), "class_{}".format(i)] for i in range(1000)}
    _build.write_json(os.path.join(out, "index_to_name.json"), mapping)
    expected = {}
    seed = 0
    while len(expected) < 4:
        seed += 1
        name = "image_{}.jpg".format(len(expected) + 1)
        path = os.path.join(out, "inputs", name)
        _build.noise_image(seed, (320 + 16 * seed, 240 + 8 * seed)).save(path, quality=90)
        answer, margin = top5(model, path, mapping)
        if margin > 1e-4:
            expected[name] = answer
    _build.write_bad_input(out)
    _build.write_json(os.path.join(out, "expected.json"), expected)


if __name__ == "__main__":
    build(_build.out_dir(sys.argv, "build"))
