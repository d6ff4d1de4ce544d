/**
 * The Open Inference Protocol's REST bodies (KServe's rest_predict_v2.yaml) and the binary tensor extension: an
 * inference request (JSON, or JSON of `Inference-Header-Content-Length` bytes followed by the tensors'
 * `binary_data_size` bytes) into the transport-neutral InferRequest, and an InferResponse back into a body. Pure.
 */

import { MarError } from '../../errors.js';
import type { Element, Parameters, ParamValue, Tensor } from './tensor.js';
import { checkDatatype, checkShape, expectedCount, flattenJsonData, resolveShape } from './tensor.js';
import { decodeBinary, encodeBinary } from './tensor-binary.js';

/** An output the client asked for (`outputs` of the request). */
export interface RequestedOutput {
  name: string;
  parameters?: Parameters;
}

/** An inference request, whichever way it came (REST JSON, binary extension, gRPC). */
export interface InferRequest {
  /** The client's id, if it sent one: answered back in the response. */
  id?: string;
  parameters?: Parameters;
  inputs: Tensor[];
  outputs?: RequestedOutput[];
  /** Inputs came as raw bytes (gRPC raw_input_contents): gRPC answers with raw_output_contents too (KServe's rule). */
  rawInputs?: boolean;
}

/** An inference response before it is put on a transport. */
export interface InferResponse {
  model_name: string;
  model_version?: string;
  id: string;
  parameters?: Parameters;
  outputs: Tensor[];
}

/** The HTTP header that says how many leading body bytes are JSON (the binary tensor extension). */
export const INFERENCE_HEADER = 'inference-header-content-length';

const bad = (message: string): MarError => new MarError('BAD_REQUEST', message);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `$parameters`: an object of strings, numbers and booleans. */
export function checkParameters(v: unknown, what: string): Parameters | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw bad(`${what}: parameters must be an object, got ${JSON.stringify(v)}`);
  for (const [k, p] of Object.entries(v)) {
    if (typeof p !== 'string' && typeof p !== 'number' && typeof p !== 'boolean') {
      throw bad(`${what}: parameter ${JSON.stringify(k)} must be a string, number or boolean`);
    }
  }
  return v as Parameters;
}

/** A parser's message on one line and short: it quotes the client's bytes, newlines and control characters included. */
export function oneLine(text: string): string {
  const flat = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\s]+/g, ' ');
  return flat.length > 200 ? `${flat.slice(0, 197)}...` : flat;
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw bad(`${what} is not valid JSON: ${oneLine((err as Error).message)}`);
  }
}

/**
 * Parses a REST inference request body. `headerLength` is the Inference-Header-Content-Length value (undefined when
 * the header is absent): that many bytes are JSON, the rest the tensors with `binary_data_size`, in input order.
 */
export function parseRestRequest(body: Buffer, headerLength: string | undefined): InferRequest {
  let json = body;
  let binary: Buffer | null = null;
  if (headerLength !== undefined) {
    const n = /^\d+$/.test(headerLength.trim()) ? Number(headerLength.trim()) : Number.NaN;
    if (!Number.isSafeInteger(n) || n > body.length) {
      throw bad(
        `Inference-Header-Content-Length ${JSON.stringify(headerLength)} must be an integer from 0 to the body's ${body.length} bytes`,
      );
    }
    json = body.subarray(0, n);
    binary = body.subarray(n);
  }
  return parseRequestObject(parseJson(json, 'the inference request'), binary);
}

/** Checks an inference request object (`$inference_request`); `binary` holds the extension's tensor bytes. */
export function parseRequestObject(o: unknown, binary: Buffer | null): InferRequest {
  if (!isObject(o)) throw bad('the inference request must be a JSON object with "inputs"');
  const req: InferRequest = { inputs: [] };
  if (o['id'] !== undefined && o['id'] !== null) {
    if (typeof o['id'] !== 'string') throw bad(`the request "id" must be a string, got ${JSON.stringify(o['id'])}`);
    req.id = o['id'];
  }
  const params = checkParameters(o['parameters'], 'the request');
  if (params) req.parameters = params;
  if (!Array.isArray(o['inputs'])) throw bad('the inference request needs "inputs": an array of tensors');
  let offset = 0;
  const names = new Set<string>();
  for (const [i, raw] of o['inputs'].entries()) {
    const t = parseTensor(raw, `input ${i}`, 'data', binary, offset);
    offset += t.binaryBytes;
    if (names.has(t.tensor.name)) throw bad(`input ${JSON.stringify(t.tensor.name)} is given twice`);
    names.add(t.tensor.name);
    req.inputs.push(t.tensor);
  }
  if (binary !== null && offset !== binary.length) {
    throw bad(`${binary.length - offset} byte(s) after the JSON are not claimed by any input's binary_data_size`);
  }
  if (o['outputs'] !== undefined && o['outputs'] !== null) {
    if (!Array.isArray(o['outputs'])) throw bad('"outputs" must be an array of {"name": ...}');
    req.outputs = o['outputs'].map((r: unknown, i) => {
      if (!isObject(r) || typeof r['name'] !== 'string') throw bad(`requested output ${i} needs a "name" string`);
      const p = checkParameters(r['parameters'], `requested output ${JSON.stringify(r['name'])}`);
      return p ? { name: r['name'], parameters: p } : { name: r['name'] };
    });
  }
  return req;
}

/**
 * One `$request_input` or `$response_output`: name, shape, datatype, parameters, and data (JSON, or `binary_data_size`
 * bytes of `binary` from `offset`). Returns the tensor and how many binary bytes it took.
 */
function parseTensor(
  raw: unknown,
  where: string,
  dataKey: 'data',
  binary: Buffer | null,
  offset: number,
): { tensor: Tensor; binaryBytes: number } {
  if (!isObject(raw)) throw bad(`${where} must be an object with name, shape, datatype and data`);
  if (typeof raw['name'] !== 'string') throw bad(`${where} needs a "name" string`);
  const what = `${where.split(' ')[0]} ${JSON.stringify(raw['name'])}`;
  const datatype = checkDatatype(raw['datatype'], what);
  const shape = checkShape(raw['shape'], what);
  const parameters = checkParameters(raw['parameters'], what);
  const size = parameters?.['binary_data_size'];
  let data: Element[];
  let binaryBytes = 0;
  if (size !== undefined) {
    if (raw[dataKey] !== undefined) throw bad(`${what} has both "data" and the binary_data_size parameter; send one`);
    if (binary === null) throw bad(`${what} has binary_data_size but the request has no Inference-Header-Content-Length header`);
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || offset + size > binary.length) {
      throw bad(`${what}: binary_data_size ${JSON.stringify(size)} does not fit the ${binary.length - offset} binary byte(s) left`);
    }
    data = decodeBinary(binary.subarray(offset, offset + size), datatype, expectedCount(shape, what), what);
    binaryBytes = size;
  } else {
    if (raw[dataKey] === undefined) throw bad(`${what} has no "data" (nor a binary_data_size parameter)`);
    expectedCount(shape, what);
    data = flattenJsonData(raw[dataKey], datatype, what);
  }
  const tensor: Tensor = { name: raw['name'], datatype, shape: resolveShape(shape, data.length, what), data };
  if (parameters) {
    const { binary_data_size: _, ...rest } = parameters;
    if (Object.keys(rest).length > 0) tensor.parameters = rest;
  }
  return { tensor, binaryBytes };
}

/** A tensor a handler returned (`$response_output`); a bad one is the handler's fault: PREDICTION_FAILED (503). */
export function parseOutputTensor(raw: unknown, index: number): Tensor {
  return handlerFault(() => parseTensor(raw, `output ${index}`, 'data', null, 0).tensor);
}

function handlerFault<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new MarError('PREDICTION_FAILED', `the handler's answer is not a valid inference response: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * A handler's own v2 response (service_envelope=none): `{"outputs": [...]}` with optional id, model_name,
 * model_version and parameters, checked like a request's tensors.
 */
export function parseResponseObject(o: unknown, defaults: { model_name: string; model_version: string; id: string }): InferResponse {
  if (!isObject(o) || !Array.isArray(o['outputs'])) {
    throw new MarError('PREDICTION_FAILED', 'the handler\'s answer is not a valid inference response: no JSON object with "outputs"');
  }
  const outputs = o['outputs'].map((raw, i) => parseOutputTensor(raw, i));
  const res: InferResponse = {
    model_name: typeof o['model_name'] === 'string' ? o['model_name'] : defaults.model_name,
    model_version: typeof o['model_version'] === 'string' ? o['model_version'] : defaults.model_version,
    id: typeof o['id'] === 'string' ? o['id'] : defaults.id,
    outputs,
  };
  const params = handlerFault(() => checkParameters(o['parameters'], 'the response'));
  if (params) res.parameters = params;
  return res;
}

// ---------------------------------------------------------------------------------------------------------------
// Responses

/**
 * Which outputs go back, in which order, and which of them as binary: the requested ones (each must exist), else
 * all. Binary: the output's `binary_data` parameter, else the request's `binary_data_output`, else JSON.
 */
export function selectOutputs(req: InferRequest, res: InferResponse): Array<{ tensor: Tensor; binary: boolean }> {
  const all = req.parameters?.['binary_data_output'] === true;
  if (req.outputs === undefined || req.outputs.length === 0) return res.outputs.map((tensor) => ({ tensor, binary: all }));
  return req.outputs.map((r) => {
    const tensor = res.outputs.find((t) => t.name === r.name);
    if (!tensor) {
      const have = res.outputs.map((t) => t.name).join(', ') || 'none';
      throw bad(`requested output ${JSON.stringify(r.name)} is not produced by model ${res.model_name} (its outputs: ${have})`);
    }
    const flag = r.parameters?.['binary_data'];
    return { tensor, binary: typeof flag === 'boolean' ? flag : all };
  });
}

/** A tensor's elements as JSON values: raw BYTES as UTF-8 text, 64-bit integers beyond 2^53 as exact digits. */
function jsonData(t: Tensor): unknown[] {
  if (t.datatype === 'BYTES') return t.data.map((e) => (Buffer.isBuffer(e) ? e.toString('utf8') : e));
  return t.data;
}

/**
 * The REST body of a response: JSON, or with binary outputs the JSON followed by their bytes and the header
 * `Inference-Header-Content-Length` (then `application/octet-stream`).
 */
export function formatRestResponse(
  req: InferRequest,
  res: InferResponse,
): { body: Buffer; contentType: string; jsonLength: number | null } {
  const chosen = selectOutputs(req, res);
  const chunks: Buffer[] = [];
  const outputs = chosen.map(({ tensor, binary }) => {
    const out: Record<string, unknown> = { name: tensor.name, datatype: tensor.datatype, shape: tensor.shape };
    const params: Record<string, ParamValue> = { ...tensor.parameters };
    if (binary) {
      const bytes = encodeBinary(tensor.data, tensor.datatype);
      chunks.push(bytes);
      params['binary_data_size'] = bytes.length;
    } else {
      out['data'] = jsonData(tensor);
    }
    if (Object.keys(params).length > 0) out['parameters'] = params;
    return out;
  });
  const head: Record<string, unknown> = { model_name: res.model_name };
  if (res.model_version !== undefined) head['model_version'] = res.model_version;
  head['id'] = res.id;
  if (res.parameters) head['parameters'] = res.parameters;
  head['outputs'] = outputs;
  const json = Buffer.from(stringifyJson(head), 'utf8');
  if (chunks.length === 0) return { body: json, contentType: 'application/json', jsonLength: null };
  return { body: Buffer.concat([json, ...chunks]), contentType: 'application/octet-stream', jsonLength: json.length };
}

/** JSON.stringify that writes bigints as exact integers (JSON numbers have no size limit; JSON.stringify refuses bigints). */
export function stringifyJson(value: unknown): string {
  try {
    // the common case has no bigint: no replacer call per value
    return JSON.stringify(value);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
  }
  const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `\u0000big:${v}` : v));
  return text.replace(/"\\u0000big:(-?\d+)"/g, '$1');
}
