"""ts.torch_handler.image_classifier.ImageClassifier: an image in, the top 5 classes out, as
[{label: probability, ...}] per request (labels from index_to_name.json, else the class index).
The transform is ImageNet's: resize to 256, center crop 224, to tensor, normalise."""

import torch
import torch.nn.functional as F
from torchvision import transforms

from ts.handler_utils.timer import timed
from ts.torch_handler.vision_handler import VisionHandler
from ts.utils.util import map_class_to_label


# ImageNet's: the classifier's and the segmenter's (image_segmenter imports it).
IMAGENET_TRANSFORM = transforms.Compose(
    [
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ]
)


class ImageClassifier(VisionHandler):
    topk = 5
    image_processing = IMAGENET_TRANSFORM

    def set_max_result_classes(self, topk):
        self.topk = topk

    def get_max_result_classes(self):
        return self.topk

    @timed
    def postprocess(self, data):
        ps = F.softmax(data, dim=1)
        # A model with fewer than topk classes gets all of them (TorchServe's torch.topk would fail).
        probs, classes = torch.topk(ps, min(self.topk, ps.shape[1]), dim=1)
        return map_class_to_label(probs.tolist(), self.mapping, classes.tolist())
