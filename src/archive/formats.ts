/** Output formats of `model-archiver create`; a module of its own so the CLI can list them without loading the writers. */
export const ARCHIVE_FORMATS = ['default', 'zip-store', 'tgz', 'no-archive'] as const;
export type ArchiveFormat = (typeof ARCHIVE_FORMATS)[number];
