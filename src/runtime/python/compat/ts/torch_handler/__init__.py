"""Only the torch-free BaseHandler; TorchServe's built-in handlers (image_classifier, ...) need torch."""
