/**
 * Token authorization as TorchServe 0.11+ does it: at start three random keys are written to key_file.json
 * (mode 0600) in the working directory: an inference key and a management key, each with an expiry
 * (token_expiration_min), and an API key that only rotates the other two (`GET /token?type=...`). A request
 * needs `Authorization: Bearer <key>`; a missing, wrong or expired key gets TorchServe's 400 InvalidKeyException.
 * Keys are compared in constant time.
 */

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { describeFsError, MarError } from '../errors.js';

export type TokenKind = 'inference' | 'management';

/** TorchServe's texts (TokenAuthorizationHandler): "Authorization" for API calls, "Authentication" for the token API. */
const AUTHORIZATION_FAILED = 'Token Authorization failed. Token either incorrect, expired, or not provided correctly';
const AUTHENTICATION_FAILED = 'Token Authentication failed. Token either incorrect, expired, or not provided correctly';

const BEARER = /^Bearer\s+(\S+)$/;

interface Key {
  value: Buffer;
  /** ms since the epoch; Infinity for the API key. */
  expiresAt: number;
}

/** 6 random bytes, base64url: an 8-character key, as TorchServe's. */
function newKey(expiresAt: number): Key {
  return { value: Buffer.from(randomBytes(6).toString('base64url')), expiresAt };
}

/** Constant time for keys of the key's length (a different length says nothing about the key). */
function sameKey(key: Buffer, given: string): boolean {
  const g = Buffer.from(given);
  if (g.length !== key.length) {
    timingSafeEqual(key, key);
    return false;
  }
  return timingSafeEqual(key, g);
}

export interface TokenAuthorizationOptions {
  /** key_file.json's path. */
  keyFile: string;
  /** Lifetime of the inference and management keys. */
  expirationMinutes: number;
  /** The clock (tests move it). */
  now?: () => number;
}

/** The keys of one running server and its key file. */
export class TokenAuthorization {
  readonly keyFile: string;
  readonly #lifetimeMs: number;
  readonly #now: () => number;
  readonly #api: Key;
  #inference: Key;
  #management: Key;
  /** Rotations write the file one after another (a rename is atomic; two writers must not interleave). */
  #writing: Promise<void> = Promise.resolve();

  private constructor(o: TokenAuthorizationOptions) {
    this.keyFile = o.keyFile;
    this.#lifetimeMs = o.expirationMinutes * 60_000;
    this.#now = o.now ?? Date.now;
    const expires = this.#now() + this.#lifetimeMs;
    this.#api = newKey(Number.POSITIVE_INFINITY);
    this.#inference = newKey(expires);
    this.#management = newKey(expires);
  }

  /** New keys, written to `keyFile` before this resolves (a MarError when it cannot be written). */
  static async create(o: TokenAuthorizationOptions): Promise<TokenAuthorization> {
    const auth = new TokenAuthorization(o);
    await auth.#write();
    return auth;
  }

  /** The key file's content, in TorchServe's shape. */
  keyFileJson(): string {
    const entry = (k: Key): Record<string, string> => ({ key: k.value.toString(), 'expiration time': new Date(k.expiresAt).toISOString() });
    return `${JSON.stringify({ management: entry(this.#management), inference: entry(this.#inference), API: { key: this.#api.value.toString() } }, null, 2)}\n`;
  }

  /** Throws TOKEN_INVALID unless `req` carries the live key of `kind`. */
  authorize(req: IncomingMessage, kind: TokenKind): void {
    this.authorizeHeader(req.headers.authorization, kind);
  }

  /** As authorize, for an `Authorization` value from elsewhere (gRPC metadata). */
  authorizeHeader(header: string | undefined, kind: TokenKind): void {
    if (!this.#accepts(header, kind === 'inference' ? this.#inference : this.#management)) {
      throw new MarError('TOKEN_INVALID', AUTHORIZATION_FAILED);
    }
  }

  /**
   * `GET /token?type=management|inference` with the API key: a new key of that type with a new expiry,
   * written to the key file. Throws TOKEN_INVALID (TorchServe's "Token Authentication failed") otherwise.
   */
  async rotate(req: IncomingMessage, type: string | null): Promise<void> {
    if (!this.#accepts(req.headers.authorization, this.#api) || (type !== 'management' && type !== 'inference')) {
      throw new MarError('TOKEN_INVALID', AUTHENTICATION_FAILED);
    }
    const key = newKey(this.#now() + this.#lifetimeMs);
    if (type === 'management') this.#management = key;
    else this.#inference = key;
    await this.#write();
  }

  /** Removes the key file at shutdown, unless another server has written its own there since. */
  async removeKeyFile(): Promise<void> {
    await this.#writing;
    const text = await readFile(this.keyFile, 'utf8').catch(() => null);
    if (text?.includes(`"${this.#api.value.toString()}"`)) await unlink(this.keyFile).catch(() => {});
  }

  #accepts(header: string | undefined, key: Key): boolean {
    const m = header === undefined ? null : BEARER.exec(header);
    return m !== null && sameKey(key.value, m[1]!) && this.#now() < key.expiresAt;
  }

  /** Temp file with mode 0600 beside the key file, then rename: a reader never sees half a file or a wider mode. */
  #write(): Promise<void> {
    const run = async (): Promise<void> => {
      const tmp = `${this.keyFile}.${process.pid}.tmp`;
      try {
        await unlink(tmp).catch(() => {});
        await writeFile(tmp, this.keyFileJson(), { mode: 0o600, flag: 'wx' });
        await rename(tmp, this.keyFile);
      } catch (err) {
        await unlink(tmp).catch(() => {});
        throw new MarError('OUTPUT_FAILED', `cannot write the token key file ${this.keyFile}: ${describeFsError(err)}`, { cause: err });
      }
    };
    const next = this.#writing.then(run, run);
    this.#writing = next.catch(() => {});
    return next;
  }
}
