/**
 * Item rows in the Node worker (docs/worker-protocol.md §3.3, as _mar_worker/items.py): a request whose only
 * parameter is ITEMS_PARAM contributes the elements of its JSON array to `data`, and gets back the JSON array of the
 * handler's outputs for them. Node handlers have no explain: an explain batch of item rows is answered 501.
 */
import type { InferenceRequest } from '../protocol.js';
import { ITEMS_PARAM } from '../protocol.js';

/** The items of an item row, or null for an ordinary request. */
export function itemsOf(req: InferenceRequest): unknown[] | null {
  const p = req.params;
  if (p.length !== 1 || p[0]!.name !== ITEMS_PARAM) return null;
  const items = JSON.parse(p[0]!.value.toString('utf8')) as unknown;
  if (!Array.isArray(items)) throw new Error(`the ${ITEMS_PARAM} parameter of request ${req.requestId} is not a JSON array`);
  return items;
}

/** TorchServe's explain marker, the header `explain: True` (the last one given). */
export function asksExplain(req: InferenceRequest): boolean {
  let value: string | undefined;
  for (const [k, v] of req.headers) if (k === 'explain') value = v;
  return value === 'True';
}

/** How many outputs the handler must return: one per request or item; null when any number will do (one item row). */
export function expectedOutputs(batchLength: number, counts: ReadonlyArray<number | null> | null): number | null {
  if (counts === null) return batchLength;
  if (counts.length === 1 && counts[0] !== null) return null;
  return counts.reduce<number>((n, c) => n + (c ?? 1), 0);
}

/** The handler's list cut into one value per request: an item row gets the JSON text of its outputs' array. */
export function splitOutputs(result: unknown[], counts: ReadonlyArray<number | null>): unknown[] {
  if (counts.length === 1 && counts[0] !== null) return [JSON.stringify(result)];
  const rows: unknown[] = [];
  let pos = 0;
  for (const c of counts) {
    if (c === null) rows.push(result[pos++]);
    else {
      rows.push(JSON.stringify(result.slice(pos, pos + c)));
      pos += c;
    }
  }
  return rows;
}
