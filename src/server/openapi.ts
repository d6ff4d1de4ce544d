/**
 * OpenAPI 3.0.1 documents served by OPTIONS / and /api-description (per listener), and by OPTIONS
 * /predictions/{model}. Modelled on MMS's OpenApiUtils, but every parameter listed is one the server really
 * reads (e.g. `url`, not MMS's documented `model_url`; `initial_workers`; limit capped at 100).
 */

import { REGISTER_RUNTIMES } from '../handler/runtimes.js';

type Json = Record<string, unknown>;

const errorSchema: Json = {
  type: 'object',
  required: ['code', 'type', 'message'],
  properties: {
    code: { type: 'integer', description: 'Error code.' },
    type: { type: 'string', description: 'Error type.' },
    message: { type: 'string', description: 'Error message.' },
  },
};
const statusSchema: Json = {
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string', description: 'Status message.' } },
};
const binary: Json = { type: 'string', format: 'binary' };

const json = (schema: Json): Json => ({ 'application/json': { schema } });
const resp = (description: string, content?: Json): Json => (content ? { description, content } : { description });
const err = (description: string): Json => resp(description, json(errorSchema));
const status = (description: string): Json => resp(description, json(statusSchema));
const pathParam = (name: string, description: string): Json => ({
  in: 'path',
  name,
  description,
  required: true,
  schema: { type: 'string' },
});
const queryParam = (name: string, description: string, type = 'string', def?: string | number | boolean, required = false): Json => ({
  in: 'query',
  name,
  description,
  required,
  schema: def === undefined ? { type } : { type, default: def },
});

const apiDescriptionResponse = resp(
  'A openapi 3.0.1 descriptor.',
  json({
    type: 'object',
    required: ['openapi', 'info', 'paths'],
    properties: { openapi: { type: 'string' }, info: { type: 'object' }, paths: { type: 'object' } },
  }),
);

const predictionResponses = (): Json => ({
  '200': resp('Output data format is defined by each model (status, headers and content type come from the handler).', {
    '*/*': { schema: binary },
  }),
  '404': err('Model not found.'),
  '413': resp('Request body larger than max_request_size.'),
  '500': err('Internal Server Error (e.g. "Worker died.").'),
  '503': err('No worker is available to serve request, or the handler failed.'),
});

const predictionBody = (description: string): Json => ({
  description,
  content: { '*/*': { schema: binary } },
  required: false,
});

function inferencePaths(): Json {
  return {
    '/': { options: { operationId: 'listAPIs', parameters: [], responses: { '200': apiDescriptionResponse } } },
    '/{model_name}/predict': {
      post: {
        description: 'A legacy predict entry point for each model. Query parameters are passed to the handler.',
        operationId: 'predict',
        parameters: [pathParam('model_name', 'Name of model.')],
        requestBody: predictionBody('Input data format is defined by each model.'),
        responses: predictionResponses(),
        deprecated: true,
      },
    },
    '/ping': {
      get: {
        operationId: 'ping',
        parameters: [],
        responses: {
          '200': resp(
            'Model server status: Healthy, Partial Healthy or Unhealthy.',
            json({
              type: 'object',
              required: ['status'],
              properties: { status: { type: 'string', description: 'Overall status of the Model Server.' } },
            }),
          ),
        },
      },
    },
    '/predictions/{model_name}': {
      post: {
        description: 'Predictions entry point for each model. Use OPTIONS method to get detailed model API input and output description.',
        operationId: 'predictions',
        parameters: [pathParam('model_name', 'Name of model.')],
        requestBody: predictionBody(
          'Input data format is defined by each model. A multipart/form-data or x-www-form-urlencoded body gives one input per field; any other body is the input named "body".',
        ),
        responses: predictionResponses(),
      },
      options: {
        description: 'Display details of per model input and output.',
        operationId: 'predictionsApi',
        parameters: [pathParam('model_name', 'Name of model.')],
        responses: { '200': resp('OK', json({ type: 'object' })), '404': err('Model not found.') },
      },
    },
    '/api-description': {
      get: { operationId: 'apiDescription', parameters: [], responses: { '200': apiDescriptionResponse }, deprecated: true },
    },
    '/invocations': {
      post: {
        description: 'A generic invocation entry point for all models. Query parameters are passed to the handler.',
        operationId: 'invocations',
        parameters: [
          queryParam(
            'model_name',
            'Name of model; without it, the only model loaded at startup, else a model_name field of a form body (multipart or urlencoded).',
          ),
        ],
        requestBody: predictionBody('Input data format is defined by each model.'),
        responses: { ...predictionResponses(), '400': err('Parameter model_name is required.') },
      },
    },
    '/models/{model_name}/invoke': {
      post: {
        description: 'A generic invocation entry point (SageMaker style). Query parameters are passed to the handler.',
        operationId: 'invokeModel',
        parameters: [pathParam('model_name', 'Name of model.')],
        requestBody: predictionBody('Input data format is defined by each model.'),
        responses: predictionResponses(),
      },
    },
  };
}

function managementPaths(): Json {
  return {
    '/': { options: { operationId: 'listAPIs', parameters: [], responses: { '200': apiDescriptionResponse } } },
    '/api-description': {
      get: { operationId: 'apiDescription', parameters: [], responses: { '200': apiDescriptionResponse }, deprecated: true },
    },
    '/models': {
      get: {
        description: 'List registered models, sorted by name.',
        operationId: 'listModels',
        parameters: [
          queryParam('limit', 'Maximum number of items to return (0-100; other values mean 100).', 'integer', 100),
          queryParam('next_page_token', 'Index of the first model to return (the nextPageToken of a previous call).', 'integer', 0),
        ],
        responses: {
          '200': resp(
            'OK',
            json({
              type: 'object',
              required: ['models'],
              properties: {
                nextPageToken: { type: 'string', description: 'Present when more models may follow; pass it as next_page_token.' },
                models: {
                  type: 'array',
                  items: {
                    type: 'object',
                    required: ['modelName', 'modelUrl'],
                    properties: { modelName: { type: 'string' }, modelUrl: { type: 'string' } },
                  },
                },
              },
            }),
          ),
        },
      },
      post: {
        description:
          'Register a new model. Parameters come from the query string, or from a JSON body with the same keys when Content-Type is application/json.',
        operationId: 'registerModel',
        parameters: [
          queryParam(
            'url',
            'Model archive (.mar, .tar.gz) or directory inside model_store, or an http(s) URL matching allowed_urls.',
            'string',
            undefined,
            true,
          ),
          queryParam('model_name', 'Name of model; overrides the manifest.'),
          queryParam('handler', 'Handler entry point module[:function]; overrides the manifest.'),
          { ...queryParam('runtime', 'Runtime; overrides the manifest.'), schema: { type: 'string', enum: [...REGISTER_RUNTIMES] } },
          queryParam('batch_size', 'Inference batch size.', 'integer', 1),
          queryParam('max_batch_delay', 'Maximum delay for batch aggregation in ms.', 'integer', 100),
          queryParam('initial_workers', 'Number of initial workers (default: default_workers_per_model, else 0).', 'integer'),
          queryParam('synchronous', 'Wait for the workers to start.', 'boolean', true),
          queryParam('response_timeout', 'Worker response timeout in seconds (default: default_response_timeout).', 'integer'),
        ],
        requestBody: {
          description:
            'Instead of the query string (which is then ignored): the same keys in a JSON object, with Content-Type: application/json.',
          required: false,
          content: json({
            type: 'object',
            required: ['url'],
            properties: {
              url: { type: 'string' },
              model_name: { type: 'string' },
              handler: { type: 'string' },
              runtime: { type: 'string', enum: [...REGISTER_RUNTIMES] },
              batch_size: { type: 'integer', default: 1 },
              max_batch_delay: { type: 'integer', default: 100 },
              initial_workers: { type: 'integer' },
              synchronous: { type: 'boolean', default: true },
              response_timeout: { type: 'integer' },
            },
          }),
        },
        responses: {
          '200': status('Model registered / workers scaled.'),
          '202': status('Processing worker updates...'),
          '210': status('Workers scaling in progress...'),
          '400': err('Bad request (missing url, invalid runtime, invalid model).'),
          '404': err('Model not found in model store.'),
          '409': err('Model is already registered.'),
          '500': err('Failed to start workers.'),
        },
      },
    },
    '/models/{model_name}': {
      get: {
        description: 'Describe a model and its workers.',
        operationId: 'describeModel',
        parameters: [pathParam('model_name', 'Name of model.')],
        responses: { '200': resp('OK', json({ type: 'object' })), '404': err('Model not found.') },
      },
      put: {
        description: 'Scale the workers of a model.',
        operationId: 'setAutoScale',
        parameters: [
          pathParam('model_name', 'Name of model.'),
          queryParam('min_worker', 'Minimum number of workers.', 'integer', 1),
          queryParam('max_worker', 'Maximum number of workers (default: min_worker).', 'integer'),
          queryParam('synchronous', 'Wait for the workers to start.', 'boolean', false),
        ],
        responses: {
          '200': status('Workers scaled.'),
          '202': status('Processing worker updates...'),
          '210': status('Workers scaling in progress...'),
          '400': err('max_worker cannot be less than min_worker.'),
          '404': err('Model not found.'),
          '500': err('Failed to start workers.'),
        },
      },
      delete: {
        description: 'Unregister a model; in-flight batches finish first.',
        operationId: 'unregisterModel',
        parameters: [pathParam('model_name', 'Name of model.')],
        responses: {
          '200': status('Model unregistered.'),
          '404': err('Model not found.'),
          '408': err('Timed out while cleaning resources.'),
          '500': err('Interrupted while cleaning resources.'),
        },
      },
    },
  };
}

const info = (title: string): Json => ({ title, description: 'MMS-compatible model server (mar-tools)', version: '1.0.0' });

/** The listing for a listener: inference paths, management paths, or both. */
export function listApis(apis: { inference: boolean; management: boolean }): Json {
  const paths: Json = {};
  if (apis.inference) Object.assign(paths, inferencePaths());
  if (apis.management) Object.assign(paths, managementPaths());
  return { openapi: '3.0.1', info: info('Model Server APIs'), paths };
}

/** The per-model document (MMS keys it as `/prediction/<name>`, singular; so do we). */
export function modelApi(modelName: string): Json {
  return {
    openapi: '3.0.1',
    info: { title: `RESTful API for: ${modelName}`, version: '1.0.0' },
    paths: {
      [`/prediction/${modelName}`]: {
        post: {
          operationId: modelName,
          parameters: [],
          requestBody: predictionBody('Input data format is defined by the model handler.'),
          responses: predictionResponses(),
        },
      },
    },
  };
}
