/** The values of `log_format` (server/logger.ts writes them); apart so reading the config loads no logger. */
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
