"""ts.torch_handler.image_segmenter.ImageSegmenter: an image in, per pixel the most likely class and its
probability out, as [H][W][class index (a float), probability] per request. The model returns a dict
with the class scores under "out" (torchvision's segmentation models); the transform is the classifier's."""

import torch

from ts.torch_handler.image_classifier import IMAGENET_TRANSFORM
from ts.torch_handler.vision_handler import VisionHandler


class ImageSegmenter(VisionHandler):
    image_processing = IMAGENET_TRANSFORM

    def postprocess(self, data):
        # Only the best class per pixel: all classes would make answers of tens of MB.
        scores = torch.nn.functional.softmax(data["out"], dim=1)
        best = torch.max(scores, dim=1)
        return torch.stack([best.indices.type(best.values.dtype), best.values], dim=3).tolist()
