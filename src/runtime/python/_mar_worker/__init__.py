"""The Python worker behind mms_worker.py, one module per job:

    codec    the OTF wire format: Reader, parse_predict, encode_*_response (no socket of its own)
    inputs   requests -> the handler's `data` list and request processors
    loading  the handler string, the manifest, model_yaml_config, importing and initialising the handler
             (a bare built-in name such as image_classifier: ts.torch_handler's)
    torch_env  torch's thread count and the load line naming the handler, Python and torch
    stdio    line-safe stdout/stderr and the worker's log format
    serve    the connection loop: LOAD, PREDICT, replies and [METRICS] lines
    main     arguments, bind/accept, signals, parent watch

A leading underscore keeps the name clear of any model's own modules (mms_worker.py imports this package
before it removes its own directory from sys.path; the submodules are then found through __path__).
Nothing is imported here: each module imports what it needs (worker start time).
"""
