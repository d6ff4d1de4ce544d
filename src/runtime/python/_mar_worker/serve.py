"""The connection loop: LOAD and PREDICT in, replies out, then the [METRICS] lines (docs/worker-protocol.md §4-5)."""

import logging
import os
import sys
import time
import traceback

from _mms_compat.errors import prediction_error_of
from _mms_compat.metrics import _HOSTNAME, MetricsStore

from _mar_worker.codec import (
    SUCCESS_MESSAGE,
    PeerClosed,
    Reader,
    encode_load_response,
    encode_predict_response,
    read_load,
)
from _mar_worker.inputs import build_batch, decoding_enabled
from _mar_worker.items import asks_explain, expected_outputs, split_outputs
from _mar_worker.loading import _one_line, load_model
from _mar_worker.stdio import end_lines

logger = logging.getLogger("mms_worker")

PREDICTION_METRIC = "PredictionTime"
# MAR_WORKER_METRICS (set by the frontend, launchers.ts): "0" when nothing consumes [METRICS] lines (none is built
# or written per batch); "reply" when the frontend reads a successful PREDICT reply's metric lines from the reply's
# message, after its first line (docs/worker-protocol.md §4): a line to stdout per batch is a write here and a pipe
# wake-up and read in the frontend, which cost it 20% of its batch-1 throughput; "reply-sampled" the same, for a
# frontend that keeps only a gauge's latest value (Prometheus): our own PredictionTime goes at most every 100 ms.
# Anything else: stdout, as MMS.
_METRICS_MODE = os.environ.get("MAR_WORKER_METRICS")
METRICS_ENABLED = _METRICS_MODE != "0"
METRICS_IN_REPLY = _METRICS_MODE in ("reply", "reply-sampled")
PREDICTION_TIME_EVERY_S = 0.1 if _METRICS_MODE == "reply-sampled" else 0.0
_SUCCESS_NL = SUCCESS_MESSAGE + "\n"
# Under "reply", our own PredictionTime of a batch whose handler recorded no metric goes in a short form,
# `[P]<hundredths of a ms>,<epoch seconds>` (docs/worker-protocol.md §2.3): the frontend knows the rest of the line
# (model, host, the batch's request ids). Building, sending and parsing the whole line cost ~10 µs of CPU per batch.
_SHORT_PREDICTION_HEAD = _SUCCESS_NL + "[P]"
# a batch whose metric lines are longer than this prints them to stdout instead (the reply's length fields are capped)
MAX_REPLY_METRICS_CHARS = 64 * 1024


def _ms(start, end):
    """A duration in milliseconds, to 2 places, as MMS's worker records PredictionTime."""
    return round((end - start) * 1000, 2)


def metrics_text(store, extra=None):
    """The store's metrics as `[METRICS]...` lines, then `extra` (a line without its newline); each line ends in one."""
    metrics = getattr(store, "store", None)
    text = "".join("[METRICS]{}\n".format(m) for m in metrics) if metrics else ""
    return text + extra + "\n" if extra else text


def emit_metrics(store, extra=None):
    """Prints the store's metrics and `extra` to stdout (one write: they are on the hot path)."""
    end_lines()
    if not METRICS_ENABLED or (store is None and extra is None):  # None: the reply carried them
        return
    text = metrics_text(store, extra)
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


_PREDICTION_HEAD = "[METRICS]" + PREDICTION_METRIC + ".Milliseconds:"
# by model name: "|#ModelName:<name>,Level:Model|#hostname:<host>,"
_prediction_tails = {}


def prediction_time_line(model_name, duration_ms, now, requests):
    """The line (without its newline) that `add_time(PredictionTime, duration_ms)` on an EMPTY store of ours, then
    printing, would give, without building the Metric and Dimension objects: every batch pays for this line."""
    tail = _prediction_tails.get(model_name)
    if tail is None:
        tail = _prediction_tails[model_name] = "|#ModelName:{},Level:Model|#hostname:{},".format(model_name, _HOSTNAME)
    # MetricsStore._get_req(None): every request id of the batch, in order
    ids = requests[0].request_id if len(requests) == 1 else ",".join(r.request_id for r in requests)
    line = _PREDICTION_HEAD + str(duration_ms) + tail + str(int(now))
    return line + "," + ids if ids else line


class Worker(object):
    def __init__(self, conn):
        self.conn = conn
        self.reader = Reader(conn)
        self.model = None
        self.decode = decoding_enabled()  # the environment is fixed for the process
        self.prediction_time_sent = float("-inf")  # when our own PredictionTime last went (time.time())

    def serve(self):
        """Serves until EOF; returns the process exit code."""
        while True:
            try:
                cmd = self.reader.read_command()
                if cmd is None:
                    logger.info("Frontend disconnected.")
                    return 0
                if cmd == b"I":
                    self.handle_predict(self.reader.read_predict())
                elif cmd == b"L":
                    if not self.handle_load(*read_load(self.reader)):
                        return 1
                else:
                    logger.error("Unknown command byte 0x%02x: closing the connection", cmd[0])
                    return 1
            except PeerClosed:
                logger.info("Frontend disconnected in the middle of a message.")
                return 0
            except (BrokenPipeError, ConnectionResetError):
                logger.info("Frontend disconnected (connection reset).")
                return 0
            except (ValueError, UnicodeDecodeError) as e:
                logger.error("Malformed message from the frontend: %s", e)
                return 1

    def send(self, data):
        self.conn.sendall(data)

    def handle_load(self, model_name, model_path, batch_size, handler, gpu_id):
        logger.info("Loading model %s from %s with handler %s (batch size %d)", model_name, model_path, handler, batch_size)
        try:
            self.model = load_model(model_name, model_path, batch_size, handler, gpu_id)
        except BaseException as e:  # noqa: B902 - any failure at load is a failed load, reported
            if isinstance(e, KeyboardInterrupt):
                raise
            end_lines()
            code = 507 if isinstance(e, MemoryError) else 500
            message = _one_line("Failed to load model {}: {}: {}".format(model_name, type(e).__name__, e))
            logger.error("%s", message)
            for line in traceback.format_exc().rstrip("\n").split("\n"):
                logger.error("%s", line)
            self.send(encode_load_response(code, message))
            return False
        emit_metrics(self.model.context.metrics)
        self.send(encode_load_response(200, "loaded model {}".format(model_name)))
        return True

    def refuse_explain(self, requests):
        """KServe's :explain for a handler that cannot explain: 501 for the batch, the handler is not called."""
        message = "The handler of model {} does not implement explain".format(self.model.context.model_name)
        logger.warning("%s: answering 501", message)
        return encode_predict_response(None, requests, message, 501)

    def handle_predict(self, requests):
        if self.model is None:
            logger.error("PREDICT before LOAD: no model loaded")
            self.send(encode_predict_response(None, requests, "No model loaded: send LOAD first", 500))
            return
        context = self.model.context
        if len(requests) == 1:
            request_ids = {0: requests[0].request_id}
        else:
            request_ids = {i: r.request_id for i, r in enumerate(requests)}
        metrics = MetricsStore(request_ids, context.model_name)
        response = None
        prediction_line = None
        counts = None
        try:
            data, processors, counts = build_batch(requests, self.decode)
            if counts is not None and not self.model.explains and asks_explain(requests[0]):
                response = self.refuse_explain(requests)
            else:
                context.request_ids = request_ids
                context.request_processor = processors
                context.metrics = metrics
                start = time.time()
                try:
                    ret = self.model.entry(data, context)
                finally:
                    end_lines()  # the handler's output ends before ours starts
                end = time.time()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as e:  # includes MemoryError; a handler error never ends the worker
            pe = prediction_error_of(e)
            if pe is not None:
                logger.error("The handler raised PredictionException(%s, %r)", pe[0], pe[1], exc_info=True)
                response = encode_predict_response(None, requests, pe[1], pe[0])
            elif isinstance(e, MemoryError):
                logger.error("System out of memory", exc_info=True)
                response = encode_predict_response(None, requests, "Out of resources", 507)
            else:
                logger.warning("The handler raised an exception: answering 503 Prediction failed", exc_info=True)
                response = encode_predict_response(None, requests, "Prediction failed", 503)
        if response is None:
            if not isinstance(ret, list):
                logger.warning("model: %s, Invalid return type: %s.", context.model_name, type(ret))
                response = encode_predict_response(None, requests, "Invalid model predict output", 503)
            elif expected_outputs(requests, counts) not in (None, len(ret)):
                logger.warning(
                    "model: %s, number of batch response mismatched, expect: %d, got: %d.",
                    context.model_name, expected_outputs(requests, counts), len(ret),
                )
                response = encode_predict_response(None, requests, "number of batch response mismatched", 503)
            else:
                message = SUCCESS_MESSAGE
                if not METRICS_ENABLED:
                    pass
                elif type(metrics) is MetricsStore and not metrics.store:
                    if end - self.prediction_time_sent >= PREDICTION_TIME_EVERY_S:
                        self.prediction_time_sent = end
                        if METRICS_IN_REPLY:
                            # the short form: whole hundredths of a millisecond and the second (no decimal rounding)
                            message = _SHORT_PREDICTION_HEAD + str(int((end - start) * 100000.0 + 0.5)) + "," + str(int(end))
                        else:
                            prediction_line = prediction_time_line(context.model_name, _ms(start, end), end, requests)
                else:
                    metrics.add_time(PREDICTION_METRIC, _ms(start, end))
                    text = metrics_text(metrics) if METRICS_IN_REPLY else ""
                    if text and len(text) <= MAX_REPLY_METRICS_CHARS:
                        message = _SUCCESS_NL + text[:-1]
                try:
                    if counts is not None:
                        ret = split_outputs(ret, counts)
                    response = encode_predict_response(ret, requests, message, 200, context)
                    if message is not SUCCESS_MESSAGE:
                        metrics, prediction_line = None, None  # the reply carries them
                except Exception:
                    logger.warning("Unable to serialize model output.", exc_info=True)
                    response = encode_predict_response(None, requests, "Unsupported model output data type.", 503)
        # The reply first, then the metrics lines (MMS's worker loop prints them after sending): the
        # frontend wakes once per message instead of twice (noop, 1 worker: +28% req/s on 2 cores). Measured
        # cost: when the frontend then preempts us on a shared core to write many responses (batch 8 of a
        # 2 ms handler), our next batch starts ~0.2 ms later (-10% there; 7.3x over batch 1 remains).
        self.send(response)
        emit_metrics(metrics, prediction_line)
