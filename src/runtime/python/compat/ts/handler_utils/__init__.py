"""ts.handler_utils: timing (timer), TorchServe's torchtext-free tokenizer (text_utils), import_class (utils)."""
