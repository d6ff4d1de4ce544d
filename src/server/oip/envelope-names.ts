/**
 * TorchServe's service_envelope values we serve: none (the body as /predictions passes it), kserve (v1), kservev2.
 * Apart from envelope.ts so reading the config loads none of the tensor code.
 */
export const ENVELOPES = ['none', 'kserve', 'kservev2'] as const;
export type EnvelopeName = (typeof ENVELOPES)[number];
