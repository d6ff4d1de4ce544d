/** The dialect table's lookup: `dialectNamed('torchserve')`. See dialect.ts. */

import type { Dialect, DialectName } from './dialect.js';
import { MMS_DIALECT } from './mms.js';
import { TORCHSERVE_DIALECT } from './torchserve.js';

export type { Dialect, DialectName, ModelHealth, UrlErrors } from './dialect.js';

const DIALECTS: Readonly<Record<DialectName, Dialect>> = { mms: MMS_DIALECT, torchserve: TORCHSERVE_DIALECT };

/** The table of one dialect. */
export function dialectNamed(name: DialectName): Dialect {
  return DIALECTS[name];
}
