"""Shared by the examples' build_model.py scripts: sample images, the label file, writing expected answers.

Every example builds its model with random weights (seeded, no download) into an output directory, together
with sample inputs and `expected.json`: the answer for each input computed by calling the model directly,
which the example's run.sh (and the tests) compare with what model-server answers.
"""

import json
import os

import torch
from PIL import Image
from torchvision import transforms

# What the image_classifier and image_segmenter handlers do to an image (TorchServe's ImageNet transform).
IMAGENET_TRANSFORM = transforms.Compose(
    [
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ]
)


def match_worker_threads():
    """Computes the expected answers with the thread count a model's single worker gets (all cores, unless
    OMP_NUM_THREADS says otherwise): float32 sums in another order differ in the 5th decimal of a box corner,
    and the examples compare to 1e-5. Serve with one worker (default_workers_per_model=1) to compare exactly."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = os.environ.get("OMP_NUM_THREADS") or cores
    torch.set_num_threads(max(1, int(threads)))


def out_dir(argv, default):
    match_worker_threads()
    path = argv[1] if len(argv) > 1 else default
    os.makedirs(os.path.join(path, "inputs"), exist_ok=True)
    return path


def noise_image(seed, size, mode="RGB"):
    """A deterministic picture: smooth colour gradients plus seeded noise (real JPEG/PNG content)."""
    g = torch.Generator().manual_seed(seed)
    width, height = size
    channels = 1 if mode == "L" else 3
    ys = torch.linspace(0, 1, height).view(1, height, 1)
    xs = torch.linspace(0, 1, width).view(1, 1, width)
    phase = torch.rand(channels, 1, 1, generator=g) * 6.28
    base = 0.5 + 0.35 * torch.sin(phase + 5 * xs + 3 * ys)
    pixels = (base + 0.15 * torch.rand(channels, height, width, generator=g)).clamp(0, 1)
    array = (pixels * 255).to(torch.uint8).permute(1, 2, 0).squeeze(-1).numpy()
    return Image.fromarray(array, mode)


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=1)
        f.write("\n")


def write_bad_input(directory, name="not_an_image.jpg"):
    """A file named like an image that is not one: the handler must answer it with a 400."""
    with open(os.path.join(directory, "inputs", name), "wb") as f:
        f.write(b"this is not an image\n")
    return name
