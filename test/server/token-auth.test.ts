/**
 * Token authorization as TorchServe 0.11+: key_file.json (0600) with three keys, `Authorization: Bearer` checked
 * per API, TorchServe's 400 InvalidKeyException texts, `GET /token` rotation with the API key, expiry, and the
 * key file removed at shutdown. Real servers on loopback in the TorchServe dialect.
 */
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { isMarError } from '../../src/errors.js';
import { TokenAuthorization } from '../../src/server/auth.js';
import { tempDir } from '../helpers/util.js';
import { http, startServer } from './server-helpers.js';

const DENIED = {
  code: 400,
  type: 'InvalidKeyException',
  message: 'Token Authorization failed. Token either incorrect, expired, or not provided correctly',
};

interface KeyFile {
  management: { key: string; 'expiration time': string };
  inference: { key: string; 'expiration time': string };
  API: { key: string };
}

const readKeys = async (dir: string): Promise<KeyFile> => JSON.parse(await readFile(join(dir, 'key_file.json'), 'utf8')) as KeyFile;
const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });
const request = (authorization?: string): IncomingMessage =>
  ({ headers: authorization === undefined ? {} : { authorization } }) as IncomingMessage;

test('keys: TorchServe key file shape and mode, Bearer parsing, expiry on the clock, rotation, removal only of our file', async (t) => {
  const dir = await tempDir(t);
  let now = Date.UTC(2024, 1, 16, 20, 12, 24);
  const keyFile = join(dir, 'key_file.json');
  const auth = await TokenAuthorization.create({ keyFile, expirationMinutes: 60, now: () => now });
  assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
  const keys = await readKeys(dir);
  assert.deepEqual(Object.keys(keys), ['management', 'inference', 'API']);
  assert.deepEqual(keys.management['expiration time'], '2024-02-16T21:12:24.000Z');
  for (const k of [keys.management.key, keys.inference.key, keys.API.key]) assert.match(k, /^[\w-]{8}$/);
  assert.equal(new Set([keys.management.key, keys.inference.key, keys.API.key]).size, 3);

  const denied = (fn: () => void): void =>
    assert.throws(fn, (e: unknown) => isMarError(e) && e.code === 'TOKEN_INVALID' && e.httpStatus === 400);
  auth.authorize(request(`Bearer ${keys.inference.key}`), 'inference');
  auth.authorize(request(`Bearer   ${keys.management.key}`), 'management');
  denied(() => auth.authorize(request(`Bearer ${keys.management.key}`), 'inference'));
  denied(() => auth.authorize(request(`Bearer ${keys.API.key}`), 'management'));
  denied(() => auth.authorize(request(keys.inference.key), 'inference'));
  denied(() => auth.authorize(request(`Bearer ${keys.inference.key} x`), 'inference'));
  denied(() => auth.authorize(request(`Bearer ${keys.inference.key}x`), 'inference'));
  denied(() => auth.authorize(request(), 'inference'));

  now += 60 * 60_000; // the keys expire; the API key does not
  denied(() => auth.authorize(request(`Bearer ${keys.inference.key}`), 'inference'));
  await assert.rejects(auth.rotate(request(`Bearer ${keys.management.key}`), 'management'), /Token Authentication failed/);
  await assert.rejects(auth.rotate(request(`Bearer ${keys.API.key}`), 'api'), /Token Authentication failed/);
  await auth.rotate(request(`Bearer ${keys.API.key}`), 'inference');
  const rotated = await readKeys(dir);
  assert.notEqual(rotated.inference.key, keys.inference.key);
  assert.equal(rotated.management.key, keys.management.key);
  assert.equal(rotated.inference['expiration time'], new Date(now + 60 * 60_000).toISOString());
  assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
  auth.authorize(request(`Bearer ${rotated.inference.key}`), 'inference');
  denied(() => auth.authorize(request(`Bearer ${keys.inference.key}`), 'inference'));

  // another server's key file in the same place is left alone
  await writeFile(keyFile, '{"API": {"key": "other"}}');
  await auth.removeKeyFile();
  assert.ok(await stat(keyFile));
  await auth.rotate(request(`Bearer ${keys.API.key}`), 'management');
  await auth.removeKeyFile();
  await assert.rejects(stat(keyFile), { code: 'ENOENT' });
});

test('TorchServe dialect server: every API needs its key, /token rotates one, the key file goes at shutdown', async (t) => {
  const s = await startServer(t, { load: { dialect: 'torchserve' } });
  const keys = await readKeys(s.dir);
  const I = bearer(keys.inference.key);
  const M = bearer(keys.management.key);

  const list = await http(s.management, 'GET', '/models');
  assert.deepEqual([list.status, list.json()], [400, DENIED]);
  assert.equal((await http(s.management, 'GET', '/models', undefined, I)).status, 400, 'the inference key is not a management key');
  assert.equal((await http(s.management, 'GET', '/models', undefined, M)).status, 200);
  assert.deepEqual((await http(s.inference, 'POST', '/predictions/nosuch', 'x')).json(), DENIED);
  assert.equal((await http(s.inference, 'POST', '/predictions/nosuch', 'x', I)).status, 404, 'past the key check');
  assert.equal((await http(s.inference, 'GET', '/ping')).status, 400, 'TorchServe checks /ping too');
  assert.equal((await http(s.inference, 'GET', '/ping', undefined, I)).status, 200);
  assert.equal((await http(s.inference, 'OPTIONS', '/')).status, 200, 'the API description needs no key');
  // enable_model_api is off: register and unregister are not allowed, even with the key
  assert.equal((await http(s.management, 'POST', '/models?url=py', undefined, M)).status, 405);

  const wrongKey = await http(s.management, 'GET', '/token?type=inference', undefined, M);
  assert.deepEqual(
    [wrongKey.status, wrongKey.json().message],
    [400, 'Token Authentication failed. Token either incorrect, expired, or not provided correctly'],
  );
  assert.equal((await http(s.management, 'GET', '/token?type=api', undefined, bearer(keys.API.key))).status, 400);
  const rotate = await http(s.management, 'GET', '/token?type=inference', undefined, bearer(keys.API.key));
  assert.deepEqual([rotate.status, rotate.headers['content-type'], rotate.text], [200, 'application/json', '\n']);
  const after = await readKeys(s.dir);
  assert.notEqual(after.inference.key, keys.inference.key);
  assert.equal((await http(s.inference, 'GET', '/ping', undefined, I)).status, 400, 'the old inference key is gone');
  assert.equal((await http(s.inference, 'GET', '/ping', undefined, bearer(after.inference.key))).status, 200);
  assert.equal((await http(s.management, 'GET', '/models', undefined, M)).status, 200, 'the management key is unchanged');
  assert.match(s.lines.join('\n'), /Token authorization enabled/);

  await s.stop();
  await assert.rejects(stat(join(s.dir, 'key_file.json')), { code: 'ENOENT' });
});

test('without token authorization (--disable-token-auth, or the MMS dialect) no key file is written and /token does not exist', async (t) => {
  for (const load of [{ dialect: 'torchserve', disableTokenAuth: true, enableModelApi: true } as const, {}]) {
    const s = await startServer(t, { load });
    await assert.rejects(stat(join(s.dir, 'key_file.json')), { code: 'ENOENT' });
    assert.equal((await http(s.management, 'GET', '/models')).status, 200);
    assert.equal((await http(s.management, 'GET', '/token?type=inference')).status, 404);
    assert.equal((await http(s.management, 'POST', '/models?url=py&model_name=noop&handler=noop:handle')).status, 200);
    await s.stop();
  }
});
