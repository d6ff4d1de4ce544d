/**
 * TLS for https listeners (MMS's and TorchServe's keys): `private_key_file` + `certificate_file` (PEM), or
 * `keystore` (PKCS12, with `keystore_pass`, default "changeit", as the Java servers). Read once at config time, so a
 * bad file fails the start with one line before anything listens.
 */

import { readFileSync } from 'node:fs';
import type { IncomingMessage, RequestListener, Server, ServerOptions, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { describeFsError, MarError } from '../errors.js';

/** node:http, node:https and node:tls load when first used: reading the config (cold start) needs none of them. */
const builtin = createRequire(import.meta.url) as <T>(id: string) => T;

/** The key material of every https listener. */
export type TlsMaterial =
  | { readonly kind: 'pem'; readonly key: Buffer; readonly cert: Buffer }
  | { readonly kind: 'pkcs12'; readonly pfx: Buffer; readonly passphrase: string };

function readKeyFile(cwd: string, key: string, file: string): Buffer {
  const path = resolve(cwd, file);
  try {
    return readFileSync(path);
  } catch (err) {
    throw new MarError('INPUT_NOT_FOUND', `cannot read ${key} ${path}: ${describeFsError(err)}`, { cause: err });
  }
}

/**
 * The TLS material the properties name, or null when they name none. keystore wins over the PEM pair, as in
 * the Java servers; only PKCS12 keystores are read (a JKS one needs converting with keytool).
 */
export function loadTlsMaterial(props: ReadonlyMap<string, string>, cwd: string): TlsMaterial | null {
  const get = (k: string): string | undefined => props.get(k)?.trim() || undefined;
  const keystore = get('keystore');
  let material: TlsMaterial;
  if (keystore !== undefined) {
    const type = (get('keystore_type') ?? 'PKCS12').toUpperCase();
    if (type !== 'PKCS12') {
      throw new MarError(
        'INPUT_INVALID',
        `invalid config value keystore_type=${JSON.stringify(type)}: only PKCS12 keystores are supported; convert it with keytool -importkeystore -deststoretype PKCS12`,
      );
    }
    material = { kind: 'pkcs12', pfx: readKeyFile(cwd, 'keystore', keystore), passphrase: props.get('keystore_pass') ?? 'changeit' };
  } else {
    const keyFile = get('private_key_file');
    const certFile = get('certificate_file');
    if (keyFile === undefined && certFile === undefined) return null;
    if (keyFile === undefined || certFile === undefined) {
      throw new MarError('INPUT_INVALID', 'https needs both private_key_file and certificate_file (or a keystore); set the missing one');
    }
    material = { kind: 'pem', key: readKeyFile(cwd, 'private_key_file', keyFile), cert: readKeyFile(cwd, 'certificate_file', certFile) };
  }
  try {
    builtin<typeof import('node:tls')>('node:tls').createSecureContext(
      material.kind === 'pem' ? { key: material.key, cert: material.cert } : { pfx: material.pfx, passphrase: material.passphrase },
    );
  } catch (err) {
    const what = material.kind === 'pem' ? 'private_key_file/certificate_file' : 'keystore/keystore_pass';
    throw new MarError('INPUT_INVALID', `cannot use ${what} for https: ${(err as Error).message}`, { cause: err });
  }
  return Object.freeze(material);
}

/** A node:http server, or a node:https one with `tls` (same options, same request events). */
export function createListenerServer(
  tls: TlsMaterial | null,
  options: ServerOptions,
  onRequest: RequestListener<typeof IncomingMessage, typeof ServerResponse>,
): Server {
  if (tls === null) return builtin<typeof import('node:http')>('node:http').createServer(options, onRequest);
  const keys = tls.kind === 'pem' ? { key: tls.key, cert: tls.cert } : { pfx: tls.pfx, passphrase: tls.passphrase };
  return builtin<typeof import('node:https')>('node:https').createServer({ ...options, ...keys }, onRequest) as unknown as Server;
}
