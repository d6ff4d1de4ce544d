"""The object detector example: a torchvision Faster R-CNN (detector_model.py) with random weights, saved as a state
dict, served by the built-in `object_detector` handler (TorchServe's examples/object_detector/fast-rcnn, smaller
and without the download).

    python3 build_model.py [OUT_DIR]    (default: ./build)

Random weights score every box alike: the backbone's batch-norm statistics are measured on a few random images
and the class head is re-drawn, so that scores differ and some boxes pass the handler's 0.5 threshold. Writes detector.pt, index_to_name.json, inputs/*.jpg and expected.json: for each image,
[{label: [x1, y1, x2, y2], "score": s}] for the detections scoring at least 0.5, from calling the model directly.
"""

import os
import sys

import torch
from PIL import Image
from torchvision import transforms

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import _build  # noqa: E402
from detector_model import Detector  # noqa: E402

LABELS = ["__background__", "person", "bicycle", "car"]
THRESHOLD = 0.5


def detections(model, path):
    with torch.inference_mode():
        row = model([transforms.ToTensor()(Image.open(path))])[0]
    keep = row["scores"] >= THRESHOLD
    return [
        {LABELS[int(label)]: box, "score": score}
        for label, box, score in zip(row["labels"][keep].tolist(), row["boxes"][keep].tolist(), row["scores"][keep].tolist())
    ]


def calibrate(model):
    """Gives the backbone's batch norms the statistics of a few images (the random ones make every box look alike)."""
    backbone = model.detector.backbone
    for layer in backbone.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.momentum = None  # a plain average over the passes
            layer.reset_running_stats()
    images = torch.stack([transforms.ToTensor()(_build.noise_image(900 + i, (320, 320))) for i in range(8)])
    backbone.train()
    with torch.no_grad():
        backbone((images - 0.45) / 0.225)
    backbone.eval()


def build(out):
    torch.manual_seed(0)
    model = Detector().eval()
    calibrate(model)
    torch.manual_seed(1)
    head = model.detector.roi_heads.box_predictor.cls_score
    torch.nn.init.normal_(head.weight, std=0.5)
    with torch.no_grad():
        head.bias.copy_(torch.tensor([0.0, 0.5, 0.2, -0.5]))
    torch.save(model.state_dict(), os.path.join(out, "detector.pt"))
    _build.write_json(os.path.join(out, "index_to_name.json"), {str(i): name for i, name in enumerate(LABELS)})
    expected = {}
    for i in range(4):
        name = "street_{}.jpg".format(i + 1)
        path = os.path.join(out, "inputs", name)
        _build.noise_image(200 + i, (320, 240)).save(path, quality=90)
        expected[name] = detections(model, path)
    _build.write_bad_input(out)
    _build.write_json(os.path.join(out, "expected.json"), expected)


if __name__ == "__main__":
    build(_build.out_dir(sys.argv, "build"))
