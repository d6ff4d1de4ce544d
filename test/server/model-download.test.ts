/**
 * Archives from URLs (allowed_urls, both dialects): saved into the model store under the url's file name,
 * removed on unregister; re-registering the url is TorchServe's 500 and MMS's 409; redirects only to allowed
 * urls; a size cap and a time limit that leave nothing half-written in the store; file:// and absolute paths
 * only when allowed. A real web server on loopback.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { createArchive } from '../../src/archive/pack.js';
import { tempDir } from '../helpers/util.js';
import { http, register, startServer } from './server-helpers.js';

const TS_LOAD = { dialect: 'torchserve', disableTokenAuth: true, enableModelApi: true } as const;

/** A web server with one archive at /models/remote.mar, plus the routes a test adds. */
async function webServer(
  t: TestContext,
  routes: Record<string, (res: ServerResponse) => void> = {},
): Promise<{ base: string; mar: Buffer; marPath: string; hits: string[] }> {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src', 'noop.py'), 'def handle(d, c):\n    return None if d is None else ["remote"] * len(d)\n');
  const created = await createArchive({ modelName: 'remote', handler: 'noop:handle', modelPath: join(dir, 'src'), exportPath: dir });
  const mar = await readFile(created.path);
  const hits: string[] = [];
  const web = createServer((req, res) => {
    hits.push(req.url ?? '');
    const route = routes[req.url ?? ''];
    if (route) route(res);
    else if (req.url === '/models/remote.mar') res.end(mar);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    web.closeAllConnections();
    web.close();
  });
  return { base: `http://127.0.0.1:${(web.address() as AddressInfo).port}`, mar, marPath: created.path, hits };
}

/** What the store holds besides the fixture handler dirs (py/, node/). */
async function storeFiles(store: string): Promise<string[]> {
  return (await readdir(store)).filter((f) => f !== 'py' && f !== 'node').sort();
}

test('a downloaded archive is saved into the store, re-registering it is TorchServe 500 / MMS 409, unregister removes it', async (t) => {
  const web = await webServer(t);
  const url = `${web.base}/models/remote.mar`;
  for (const [load, again] of [
    [TS_LOAD, { code: 500, type: 'InternalServerException', message: 'Model file already exists remote.mar' }],
    [{}, { code: 409, type: 'ConflictStatusException', message: 'Model file already exists remote.mar' }],
  ] as const) {
    const s = await startServer(t, { load, props: { allowed_urls: `${web.base.replace(/\./g, '\\\\.')}/models/.*` } });
    const r = await register(s, { url, initial_workers: 1 });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(await storeFiles(s.store), ['remote.mar']);
    assert.deepEqual(await readFile(join(s.store, 'remote.mar')), web.mar);
    assert.equal((await http(s.inference, 'POST', '/predictions/remote', 'x')).text, 'remote');
    const hits = web.hits.length;
    // TorchServe's "Model Re-Registration": the file is there, so no download happens
    const twice = await register(s, { url, model_name: 'remote2' });
    assert.deepEqual([twice.status, twice.json()], [again.code, again]);
    assert.equal(web.hits.length, hits, 'no second download');
    assert.equal((await http(s.management, 'DELETE', '/models/remote')).status, 200);
    assert.deepEqual(await storeFiles(s.store), [], 'unregister removes the downloaded archive');
    await s.stop();
  }
});

test('redirects are followed only to allowed urls; non-200 and unreachable urls are download errors', async (t) => {
  const web = await webServer(t, {
    '/ok': (res) => res.writeHead(302, { location: '/models/remote.mar' }).end(),
    '/away': (res) => res.writeHead(302, { location: 'http://127.0.0.2:1/models/remote.mar' }).end(),
    '/loop': (res) => res.writeHead(302, { location: '/loop' }).end(),
  });
  const allowed = `${web.base.replace(/\./g, '\\\\.')}/.*`;
  const s = await startServer(t, { load: TS_LOAD, props: { allowed_urls: allowed } });
  assert.equal((await register(s, { url: `${web.base}/ok`, model_name: 'viaredirect' })).status, 200);
  assert.deepEqual(await storeFiles(s.store), ['ok'], 'saved under the name of the url asked for, as TorchServe');
  const away = await register(s, { url: `${web.base}/away`, model_name: 'away' });
  assert.deepEqual(
    [away.status, away.json().message],
    [
      400,
      `Failed to download archive from: ${web.base}/away (redirected to http://127.0.0.2:1/models/remote.mar, which allowed_urls does not match)`,
    ],
  );
  assert.match((await register(s, { url: `${web.base}/loop`, model_name: 'loop' })).json().message, /more than 5 redirects/);
  const missing = await register(s, { url: `${web.base}/models/missing.mar` });
  assert.deepEqual([missing.status, missing.json().message], [400, `Failed to download archive from: ${web.base}/models/missing.mar`]);
  assert.deepEqual(await storeFiles(s.store), ['ok'], 'failed downloads leave nothing behind');
  const notAllowed = await register(s, { url: 'https://example.com/x.mar' });
  assert.deepEqual(
    [notAllowed.status, notAllowed.json().message],
    [404, 'Given URL https://example.com/x.mar does not match any allowed URL(s)'],
  );
});

test('max_download_size and download_timeout stop a download and leave no partial file', async (t) => {
  const web = await webServer(t, {
    // sends a little, then stalls until the connection is closed
    '/stall.mar': (res) => {
      res.writeHead(200, { 'content-length': '1000000' });
      res.write(Buffer.alloc(10));
    },
    // no content-length: the cap is counted while streaming
    '/big.mar': (res) => {
      res.writeHead(200);
      res.end(Buffer.alloc(5000));
    },
  });
  const s = await startServer(t, {
    load: TS_LOAD,
    props: { allowed_urls: `${web.base.replace(/\./g, '\\\\.')}/.*`, max_download_size: 4096, download_timeout: 1 },
  });
  const streamed = await register(s, { url: `${web.base}/big.mar` });
  assert.deepEqual(
    [streamed.status, streamed.json().message],
    [400, `Failed to download archive from: ${web.base}/big.mar (larger than max_download_size=4096 bytes)`],
  );
  const declared = await register(s, { url: `${web.base}/stall.mar` });
  assert.match(declared.json().message, /larger than max_download_size=4096 bytes/, 'content-length is checked before the body');
  const s2 = await startServer(t, {
    load: TS_LOAD,
    props: { allowed_urls: `${web.base.replace(/\./g, '\\\\.')}/.*`, download_timeout: 1 },
  });
  const stalled = await register(s2, { url: `${web.base}/stall.mar` });
  assert.deepEqual(
    [stalled.status, stalled.json().message],
    [400, `Failed to download archive from: ${web.base}/stall.mar (not complete within download_timeout=1 s)`],
  );
  assert.deepEqual(await readdir(s.store).then((f) => f.filter((n) => n.startsWith('.'))), [], 'no .part file is left');
  assert.deepEqual(await storeFiles(s2.store), []);
});

test('file:// urls and paths outside the store only when allowed_urls lets them in', async (t) => {
  const web = await webServer(t);
  const fileUrl = pathToFileURL(web.marPath).href;
  const refused = await startServer(t, { load: TS_LOAD });
  const r1 = await register(refused, { url: fileUrl });
  assert.deepEqual([r1.status, r1.json().message], [404, `Given URL ${fileUrl} does not match any allowed URL(s)`]);
  const r2 = await register(refused, { url: web.marPath });
  assert.deepEqual([r2.status, r2.json().message], [404, `Model not found at: ${web.marPath}`]);

  const allowed = await startServer(t, { load: TS_LOAD, props: { allowed_urls: 'file://.*' } });
  assert.equal((await register(allowed, { url: fileUrl, model_name: 'copied' })).status, 200);
  assert.deepEqual(await storeFiles(allowed.store), ['remote.mar'], 'a file:// url is copied into the store, as TorchServe');
  assert.equal((await register(allowed, { url: web.marPath, model_name: 'inplace' })).status, 200);
  assert.deepEqual(await storeFiles(allowed.store), ['remote.mar'], 'an allowed absolute path is used where it is');
  assert.equal((await http(allowed.management, 'DELETE', '/models/copied')).status, 200);
  assert.deepEqual(await storeFiles(allowed.store), []);
});
