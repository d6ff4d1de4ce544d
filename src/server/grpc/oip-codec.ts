/**
 * The Open Inference Protocol's gRPC messages (proto/open_inference_grpc.proto, as @grpc/proto-loader gives them)
 * to and from the transport-neutral InferRequest / InferResponse: typed contents or raw_input_contents in, typed
 * contents or raw_output_contents out (raw when the request was raw, or an output is FP16: KServe's rule). Pure.
 */
import { MarError } from '../../errors.js';
import type { Element, Parameters, ParamValue, Tensor } from '../oip/tensor.js';
import { checkDatatype, checkShape, expectedCount, resolveShape } from '../oip/tensor.js';
import type { Contents } from '../oip/tensor-binary.js';
import { CONTENTS_FIELDS, decodeBinary, encodeBinary, fromContents, toContents } from '../oip/tensor-binary.js';
import type { InferRequest, InferResponse } from '../oip/v2-json.js';
import { selectOutputs } from '../oip/v2-json.js';

/** InferParameter with proto-loader's `oneofs: true` (the set field's name in parameter_choice). */
export interface InferParameterMessage {
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param';
  bool_param?: boolean;
  int64_param?: string;
  string_param?: string;
  double_param?: number;
  uint64_param?: string;
}

export interface InferInputTensorMessage {
  name: string;
  datatype: string;
  shape: string[];
  parameters: Record<string, InferParameterMessage>;
  contents: Contents | null;
}

export interface ModelInferRequestMessage {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, InferParameterMessage>;
  inputs: InferInputTensorMessage[];
  outputs: Array<{ name: string; parameters: Record<string, InferParameterMessage> }>;
  raw_input_contents: Buffer[];
}

export interface ModelInferResponseMessage {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, InferParameterMessage>;
  outputs: Array<{
    name: string;
    datatype: string;
    shape: string[];
    parameters: Record<string, InferParameterMessage>;
    contents?: Contents;
  }>;
  raw_output_contents: Buffer[];
}

const bad = (message: string): MarError => new MarError('BAD_REQUEST', message);

/** InferParameters as `$parameters` (64-bit integers as numbers; exact up to 2^53). */
export function fromParameters(map: Record<string, InferParameterMessage> | undefined): Parameters | undefined {
  const entries = Object.entries(map ?? {});
  if (entries.length === 0) return undefined;
  const out: Parameters = {};
  for (const [k, p] of entries) {
    const choice = p.parameter_choice;
    if (choice === undefined) continue;
    const v = p[choice];
    out[k] = choice === 'int64_param' || choice === 'uint64_param' ? Number(v) : (v as ParamValue);
  }
  return out;
}

/** `$parameters` as InferParameters: booleans, integers (int64), other numbers (double), strings. */
export function toParameters(params: Parameters | undefined): Record<string, InferParameterMessage> {
  const out: Record<string, InferParameterMessage> = {};
  for (const [k, v] of Object.entries(params ?? {})) {
    if (typeof v === 'boolean') out[k] = { bool_param: v };
    else if (typeof v === 'string') out[k] = { string_param: v };
    else if (Number.isSafeInteger(v)) out[k] = { int64_param: String(v) };
    else out[k] = { double_param: v };
  }
  return out;
}

function hasContents(c: Contents | null | undefined): boolean {
  return CONTENTS_FIELDS.some((f) => (c?.[f]?.length ?? 0) > 0);
}

/** A ModelInferRequest as an InferRequest, every tensor checked (datatype, shape against the data). */
export function fromModelInferRequest(m: ModelInferRequestMessage): InferRequest {
  const raw = m.raw_input_contents ?? [];
  if (raw.length > 0 && raw.length !== m.inputs.length) {
    throw bad(`the request has ${m.inputs.length} input(s) but ${raw.length} raw_input_contents; give one per input, in order`);
  }
  const names = new Set<string>();
  const inputs = m.inputs.map((t, i): Tensor => {
    const what = `input ${JSON.stringify(t.name)}`;
    if (names.has(t.name)) throw bad(`${what} is given twice`);
    names.add(t.name);
    const datatype = checkDatatype(t.datatype, what);
    const shape = checkShape((t.shape ?? []).map(Number), what);
    let data: Element[];
    if (raw.length > 0) {
      if (hasContents(t.contents)) throw bad(`${what} has contents while the request uses raw_input_contents; use one or the other`);
      data = decodeBinary(raw[i]!, datatype, expectedCount(shape, what), what);
    } else {
      if (datatype === 'FP16') throw bad(`${what}: FP16 data goes in raw_input_contents (InferTensorContents has no FP16 field)`);
      expectedCount(shape, what);
      data = fromContents(t.contents, datatype, what);
    }
    const tensor: Tensor = { name: t.name, datatype, shape: resolveShape(shape, data.length, what), data };
    const params = fromParameters(t.parameters);
    if (params) tensor.parameters = params;
    return tensor;
  });
  const req: InferRequest = { inputs, rawInputs: raw.length > 0 };
  if (m.id !== '') req.id = m.id;
  const params = fromParameters(m.parameters);
  if (params) req.parameters = params;
  if (m.outputs.length > 0) {
    req.outputs = m.outputs.map((o) => {
      const p = fromParameters(o.parameters);
      return p ? { name: o.name, parameters: p } : { name: o.name };
    });
  }
  return req;
}

/** An InferResponse as a ModelInferResponse (requested outputs only, each checked to exist). */
export function toModelInferResponse(req: InferRequest, res: InferResponse): ModelInferResponseMessage {
  const chosen = selectOutputs(req, res).map((c) => c.tensor);
  const raw = req.rawInputs === true || chosen.some((t) => t.datatype === 'FP16');
  return {
    model_name: res.model_name,
    model_version: res.model_version ?? '',
    id: res.id,
    parameters: toParameters(res.parameters),
    outputs: chosen.map((t) => ({
      name: t.name,
      datatype: t.datatype,
      shape: t.shape.map(String),
      parameters: toParameters(t.parameters),
      ...(raw ? {} : { contents: toContents(t.data, t.datatype) ?? {} }),
    })),
    raw_output_contents: raw ? chosen.map((t) => encodeBinary(t.data, t.datatype)) : [],
  };
}
