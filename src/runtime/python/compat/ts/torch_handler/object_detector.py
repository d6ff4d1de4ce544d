"""ts.torch_handler.object_detector.ObjectDetector: an image in, the detections scoring at least
`threshold` (0.5) out, as [{label: [x1, y1, x2, y2], "score": s}, ...] per request (labels from
index_to_name.json, else the class index). The model is a torchvision detection model (eager, from
--model-file), which takes images of any size: a batch of different sizes goes as a list of tensors."""

from torchvision import transforms

from ts.torch_handler.vision_handler import VisionHandler
from ts.utils.util import map_class_to_label


class ObjectDetector(VisionHandler):
    image_processing = transforms.Compose([transforms.ToTensor()])
    threshold = 0.5

    def _batch(self, images):
        if all(image.shape == images[0].shape for image in images):
            return super()._batch(images)
        return [image.to(self.device) for image in images]

    def postprocess(self, data):
        result = []
        for row in data:
            keep = row["scores"] >= self.threshold
            boxes, classes, scores = (row[key][keep].tolist() for key in ("boxes", "labels", "scores"))
            detections = []
            for label, box, score in zip(classes, boxes, scores):
                detection = map_class_to_label([[box]], self.mapping, [[label]])[0]
                detection["score"] = score
                detections.append(detection)
            result.append(detections)
        return result
