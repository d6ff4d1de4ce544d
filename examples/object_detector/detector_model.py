"""The object detector's model (eager, archived with --model-file): torchvision's Faster R-CNN with a
MobileNetV3 backbone at 320 px, for 3 classes plus background. No pretrained weights are downloaded; the
state dict comes from the archive. Few proposals per image keep it quick on a CPU."""

from torch import nn
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn


class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.detector = fasterrcnn_mobilenet_v3_large_320_fpn(
            weights=None, weights_backbone=None, num_classes=4, rpn_post_nms_top_n_test=30, box_detections_per_img=20
        )

    def forward(self, images):
        return self.detector(images)
