"""TorchServe's handlers, written for mar-tools: base_handler (with or without torch), vision_handler,
image_classifier, image_segmenter, object_detector, text_handler and text_classifier (these need torch;
the vision ones torchvision and Pillow too). The model's handler names one of them (`--handler
image_classifier`) or subclasses it."""
