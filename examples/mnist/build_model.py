"""The MNIST example: an eager model (mnist.py) with random weights, saved as a state dict, served by a custom
BaseHandler subclass (mnist_handler.py), as TorchServe's examples/image_classifier/mnist.

    python3 build_model.py [OUT_DIR]    (default: ./build)

Writes digit_net.pt (the state dict), inputs/*.png (4 grey 28x28 images and a broken one) and expected.json.
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
from mnist import DigitNet  # noqa: E402

TRANSFORM = transforms.Compose([transforms.Resize((28, 28)), transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])


def build(out):
    torch.manual_seed(0)
    model = DigitNet().eval()
    torch.save(model.state_dict(), os.path.join(out, "digit_net.pt"))
    expected = {}
    for i in range(4):
        name = "digit_{}.png".format(i + 1)
        path = os.path.join(out, "inputs", name)
        _build.noise_image(100 + i, (28, 28), "L").save(path)
        with torch.inference_mode():
            scores = model(TRANSFORM(Image.open(path).convert("L")).unsqueeze(0))[0]
        expected[name] = {"digit": int(scores.argmax()), "scores": scores.tolist()}
    _build.write_bad_input(out, "not_an_image.png")
    _build.write_json(os.path.join(out, "expected.json"), expected)


if __name__ == "__main__":
    build(_build.out_dir(sys.argv, "build"))
