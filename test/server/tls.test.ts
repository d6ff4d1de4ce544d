/**
 * https addresses (MMS and TorchServe both serve TLS): private_key_file + certificate_file (PEM) or a PKCS12
 * keystore; the client verifies the certificate. Certificates are made by openssl in the test.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/server/config.js';
import { tempDir } from '../helpers/util.js';
import { startServer } from './server-helpers.js';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const SKIP = hasOpenssl() ? false : 'needs the openssl command (apt-get install openssl)';

/** GET over https, trusting only `ca`. */
function httpsGet(url: string, ca: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('https listeners with a PEM key pair or a PKCS12 keystore; a verified client gets the same answers', { skip: SKIP }, async (t) => {
  const dir = await tempDir(t);
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  const p12 = join(dir, 'keystore.p12');
  const selfSigned = '-x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1'.split(' ');
  execFileSync('openssl', ['req', ...selfSigned, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  execFileSync('openssl', ['pkcs12', '-export', '-in', cert, '-inkey', key, '-out', p12, '-passout', 'pass:s3cret'], { stdio: 'ignore' });
  const ca = await readFile(cert);
  const https = { inference_address: 'https://127.0.0.1:0', management_address: 'https://127.0.0.1:0' };
  for (const props of [
    { ...https, private_key_file: key, certificate_file: cert },
    { ...https, keystore: p12, keystore_pass: 's3cret', keystore_type: 'PKCS12' },
  ]) {
    const s = await startServer(t, { props });
    assert.match(s.inference, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(await httpsGet(`${s.inference}/ping`, ca), { status: 200, text: '{\n  "status": "Healthy"\n}\n' });
    assert.equal((await httpsGet(`${s.management}/models`, ca)).status, 200);
    await s.stop();
  }
  // one line, before anything listens, for what cannot work
  const cwd = dir;
  assert.throws(
    () => loadConfig({ cwd, env: {}, properties: https }),
    /https is not supported without a certificate: set private_key_file/,
  );
  assert.throws(
    () => loadConfig({ cwd, env: {}, properties: { ...https, private_key_file: key } }),
    /needs both private_key_file and certificate_file/,
  );
  assert.throws(
    () => loadConfig({ cwd, env: {}, properties: { ...https, keystore: p12, keystore_pass: 'wrong' } }),
    /cannot use keystore\/keystore_pass for https/,
  );
  assert.throws(() => loadConfig({ cwd, env: {}, properties: { ...https, keystore: p12, keystore_type: 'JKS' } }), /only PKCS12 keystores/);
  assert.throws(
    () => loadConfig({ cwd, env: {}, properties: { ...https, private_key_file: cert, certificate_file: cert } }),
    /cannot use private_key_file/,
  );
});
