/**
 * What a TorchServe-style handler sees of a KServe request, and how its answer is wrapped back: TorchServe's request
 * envelopes (ts/torch_handler/request_envelope/kserve.py and kservev2.py), applied per request so that several
 * requests in one batch each get their own response. The items travel to the worker as an item row (ITEMS_PARAM,
 * docs/worker-protocol.md §3.3); this module knows their shapes. Pure.
 */

import { MarError } from '../../errors.js';
import type { InferenceRequest, PredictionResult } from '../../runtime/protocol.js';
import { ITEMS_PARAM } from '../../runtime/protocol.js';
import type { EnvelopeName } from './envelope-names.js';
import type { Element, Tensor } from './tensor.js';
import { flattenValue, inferDatatype, reshape, valuesToElements } from './tensor.js';
import type { InferRequest } from './v2-json.js';
import { oneLine, parseOutputTensor, stringifyJson } from './v2-json.js';

export { ENVELOPES, type EnvelopeName } from './envelope-names.js';

/** Which protocol a request came in by. */
export type Protocol = 'torchserve' | 'v1' | 'v2';

/** The envelope configured (service_envelope / TS_SERVICE_ENVELOPE), else the route's own: v1 kserve, v2 kservev2. */
export function envelopeFor(configured: EnvelopeName | null, protocol: Protocol): EnvelopeName {
  if (configured !== null) return configured;
  return protocol === 'v1' ? 'kserve' : protocol === 'v2' ? 'kservev2' : 'none';
}

/** A KServe route whose protocol is not the configured envelope's: a client error, said plainly. */
export function checkEnvelope(envelope: EnvelopeName, protocol: Protocol, model: string): void {
  if ((protocol === 'v1' && envelope === 'kservev2') || (protocol === 'v2' && envelope === 'kserve')) {
    const route = envelope === 'kserve' ? `/v1/models/${model}:predict` : `/v2/models/${model}/infer (or gRPC ModelInfer)`;
    throw new MarError(
      'BAD_REQUEST',
      `model ${model} takes ${envelope === 'kserve' ? 'KServe v1' : 'Open Inference Protocol v2'} requests (service_envelope=${envelope}): use ${route}`,
    );
  }
}

/** The PREDICT request of an item row: the handler gets `items` as entries of `data`, the headers in its context. */
export function itemsRequest(requestId: string, headers: Array<[string, string]>, items: readonly unknown[]): InferenceRequest {
  return {
    requestId,
    headers,
    params: [{ name: ITEMS_PARAM, contentType: 'application/json', value: Buffer.from(stringifyJson(items), 'utf8') }],
  };
}

/**
 * The outputs an item row came back with (a JSON array), or the handler's own error: a status >= 400 it set for the
 * request becomes that error with its body as the message.
 */
export function itemOutputs(result: PredictionResult): unknown[] {
  return itemOutputsWithFloats(result).outputs;
}

/** As itemOutputs, plus which outputs hold a float literal (`3.0`, `1e2`): numpy keeps those FP64, JSON.parse cannot say. */
export function itemOutputsWithFloats(result: PredictionResult): { outputs: unknown[]; floats: boolean[] } {
  const text = result.body.toString('utf8');
  if (result.statusCode >= 400) {
    throw new MarError('PREDICTION_FAILED', text || `the handler answered ${result.statusCode}`, { httpStatus: result.statusCode });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed)) throw new MarError('PREDICTION_FAILED', 'the worker did not answer the item row with a JSON array');
  return { outputs: parsed, floats: floatLiteralElements(text) };
}

/**
 * For the text of a JSON array: whether each top-level element has a number literal with a fraction or an exponent
 * somewhere inside it (Python wrote a float there, even if its value is whole).
 */
export function floatLiteralElements(text: string): boolean[] {
  const out: boolean[] = [];
  let depth = 0;
  let index = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // a string: skip to its closing quote
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x5b || c === 0x7b) depth++;
    else if (c === 0x5d || c === 0x7d) depth--;
    else if (c === 0x2c && depth === 1) index++;
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let float = false;
      for (; i + 1 < text.length; i++) {
        const d = text.charCodeAt(i + 1);
        if (d === 0x2e || d === 0x65 || d === 0x45) float = true;
        else if (!(d === 0x2b || d === 0x2d || (d >= 0x30 && d <= 0x39))) break;
      }
      if (float && depth >= 1) out[index] = true;
    }
  }
  return Array.from({ length: index + 1 }, (_, k) => out[k] === true);
}

// ---------------------------------------------------------------------------------------------------------------
// kserve (v1): {"instances": [...]} -> the instances; outputs -> {"predictions": [...]} (or "explanations")

/** The instances of a v1 request body (TorchServe's kserve envelope reads only "instances"). */
export function v1Instances(body: Buffer): unknown[] {
  let o: unknown;
  try {
    o = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new MarError('BAD_REQUEST', `the request body is not valid JSON (${oneLine((err as Error).message)}); send {"instances": [...]}`);
  }
  const instances = (o as { instances?: unknown } | null)?.instances;
  if (typeof o !== 'object' || o === null || !Array.isArray(instances)) {
    throw new MarError('BAD_REQUEST', 'a KServe v1 request is a JSON object with "instances": an array');
  }
  return instances;
}

/** The v1 answer: `{"predictions": outputs}`, or `{"explanations": outputs}` for :explain. */
export function v1Answer(outputs: unknown[], explain: boolean): Buffer {
  return Buffer.from(stringifyJson(explain ? { explanations: outputs } : { predictions: outputs }), 'utf8');
}

// ---------------------------------------------------------------------------------------------------------------
// kservev2: the input tensors -> one dict each; outputs -> tensors named after the inputs

/**
 * What the handler sees for each input tensor (TorchServe's kservev2 envelope): `{name, shape, datatype, data}`
 * (and `parameters` when sent) with `data` nested to the shape, except BYTES: its first element only. BYTES given
 * as raw bytes (binary extension, gRPC) are base64 text, as TorchServe's gRPC path passes them.
 */
export function v2Items(req: InferRequest): unknown[] {
  return req.inputs.map((t) => {
    const item: Record<string, unknown> = { name: t.name, shape: t.shape, datatype: t.datatype };
    if (t.parameters) item['parameters'] = t.parameters;
    item['data'] = t.datatype === 'BYTES' ? (t.data.length > 0 ? bytesText(t.data[0]!) : null) : reshape(t.data, t.shape);
    return item;
  });
}

function bytesText(e: Element): unknown {
  return Buffer.isBuffer(e) ? e.toString('base64') : e;
}

/** The v2 request as JSON for a handler that takes it whole (service_envelope=none): data flat, raw BYTES as base64. */
export function v2RequestJson(req: InferRequest, modelName: string): Buffer {
  return Buffer.from(
    stringifyJson({
      ...(req.id !== undefined ? { id: req.id } : {}),
      model_name: modelName,
      ...(req.parameters ? { parameters: req.parameters } : {}),
      inputs: req.inputs.map((t) => ({
        name: t.name,
        shape: t.shape,
        datatype: t.datatype,
        ...(t.parameters ? { parameters: t.parameters } : {}),
        data: t.datatype === 'BYTES' ? t.data.map(bytesText) : t.data,
      })),
      ...(req.outputs ? { outputs: req.outputs } : {}),
    }),
    'utf8',
  );
}

/**
 * The handler's outputs as tensors (TorchServe's kservev2 envelope): output i is named after input i, flattened
 * (shape [n]), its datatype the one numpy gives the values (`floats`: itemOutputsWithFloats'). An output that is already a tensor object
 * (`{"name", "datatype", "shape", "data"}`) is taken as it is, so a handler can name and shape its outputs.
 */
export function v2Outputs(values: readonly unknown[], inputs: readonly Tensor[], floats: readonly boolean[] = []): Tensor[] {
  return values.map((v, i) => {
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && 'datatype' in v && 'data' in v) return parseOutputTensor(v, i);
    const flat = flattenValue(v);
    if (flat === null)
      throw new MarError('PREDICTION_FAILED', `output ${i} of the handler is a ragged nested list; return rectangular lists`);
    let datatype = inferDatatype(flat);
    // Python wrote a float (3.0) that JSON.parse made a whole number: numpy would say FP64
    if (floats[i] === true && (datatype === 'INT64' || datatype === 'BOOL')) datatype = 'FP64';
    return { name: inputs[i]?.name ?? `output-${i}`, datatype, shape: [flat.length], data: valuesToElements(flat, datatype) };
  });
}
