"""ts.torch_handler.vision_handler.VisionHandler: the base of the image handlers. preprocess() turns each
request's image (raw bytes, base64 text, or a nested list of numbers) into a tensor with the subclass's
`image_processing` transform and stacks them into one batch on the handler's device.

A request whose image cannot be read or transformed is answered with its own 400 error (TorchServe fails the
whole batch with 503); the other requests of the batch run.
"""

import base64
import binascii
import io

import torch
from PIL import Image

from _mms_compat.errors import BadInput
from ts.handler_utils.timer import timed
from ts.torch_handler.base_handler import BaseHandler


class VisionHandler(BaseHandler):
    def initialize(self, context):
        super().initialize(context)
        self.ig = None  # captum's IntegratedGradients, made on the first explain request
        self.initialized = True
        if not context.system_properties.get("limit_max_image_pixels"):
            Image.MAX_IMAGE_PIXELS = None

    @timed
    def preprocess(self, data):
        images = []
        for idx, row in enumerate(data):
            image = row.get("data") or row.get("body") if isinstance(row, dict) else None
            try:
                images.append(self._image_tensor(image))
            except BadInput as e:
                self._reject(idx, str(e))
        return self._batch(images) if images else None

    def _image_tensor(self, image):
        if isinstance(image, str):
            try:
                image = base64.b64decode(image, validate=True)
            except (binascii.Error, ValueError) as e:
                raise BadInput("the text body is not base64 of an image ({})".format(e))
        if isinstance(image, (bytes, bytearray)):
            try:
                picture = Image.open(io.BytesIO(image))
                picture.load()
            except Exception as e:  # PIL raises several types for truncated or unknown data
                raise BadInput(
                    "the request body is not an image Pillow can read ({}); send JPEG, PNG or another "
                    "format Pillow opens, as the raw body or base64".format(type(e).__name__)
                )
            try:
                return self.image_processing(picture)
            except Exception as e:
                raise BadInput("the image cannot be prepared for the model ({}: {})".format(type(e).__name__, e))
        if image is None:
            raise BadInput("the request has no body: send an image")
        try:
            return torch.FloatTensor(image)
        except (TypeError, ValueError, RuntimeError) as e:
            raise BadInput("the request body is neither an image nor a list of numbers ({})".format(e))

    def _batch(self, images):
        """One tensor for the model. Images of different sizes cannot be stacked: the batch is answered 400."""
        try:
            return torch.stack(images).to(self.device)
        except RuntimeError as e:
            raise _stack_error(e)

    def get_insights(self, tensor_data, _, target=0):
        if self.ig is None:
            try:
                from captum.attr import IntegratedGradients
            except ImportError:
                from _mms_compat.packages import install_hint
                from ts.utils.util import PredictionException

                raise PredictionException("explanations need captum: " + install_hint("captum"), 501)
            self.ig = IntegratedGradients(self.model)
        return self.ig.attribute(tensor_data, target=target, n_steps=15).tolist()


def _stack_error(cause):
    from ts.utils.util import PredictionException

    return PredictionException(
        "the images of this batch have different sizes after the transform, so they cannot form one tensor "
        "({}); send images of one size or use batch size 1".format(str(cause).splitlines()[0]),
        400,
    )
