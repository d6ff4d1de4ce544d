"""A custom TorchServe handler: a BaseHandler subclass that relies on BaseHandler.initialize to load the eager
model (mnist.py + the state dict) and on its inference(), and brings its own pre- and postprocessing.

Input: a PNG/JPEG of a digit (any size; made grey and 28x28). Output per request: {"digit": d, "scores": [10
log-probabilities]}. A body that is not an image fails the batch with 400 and says why.
"""

import io

import torch
from PIL import Image
from torchvision import transforms

from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException


class MNISTDigitHandler(BaseHandler):
    transform = transforms.Compose(
        [transforms.Resize((28, 28)), transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )

    def preprocess(self, data):
        images = []
        for row in data:
            body = row.get("data") or row.get("body")
            try:
                image = Image.open(io.BytesIO(body)).convert("L")
            except Exception:
                raise PredictionException("mnist: every request must be a PNG or JPEG image of a digit", 400)
            images.append(self.transform(image))
        return torch.stack(images)

    def postprocess(self, data):
        return [{"digit": int(row.argmax()), "scores": row.tolist()} for row in data]
