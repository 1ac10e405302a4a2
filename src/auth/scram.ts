// Server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) against stored verifiers in PostgreSQL's own format,
// for static users: the proxy never holds their passwords. Only HMACs and one SHA-256 run at login; the
// costly PBKDF2 runs once, in `pg-tenant-proxy hash-password`.
// Reference: https://www.postgresql.org/docs/current/sasl-authentication.html
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

export const SCRAM_MECHANISM = 'SCRAM-SHA-256';

export interface ScramVerifier {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

export class ScramError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScramError';
  }
}

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

/** Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 parts), as in pg_authid. */
export function parseVerifier(text: string): ScramVerifier {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(text);
  if (!m) throw new ScramError('not a SCRAM-SHA-256 verifier (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)');
  const v = { iterations: Number(m[1]), salt: Buffer.from(m[2], 'base64'), storedKey: Buffer.from(m[3], 'base64'), serverKey: Buffer.from(m[4], 'base64') };
  if (v.iterations < 4096) throw new ScramError(`iteration count ${v.iterations} is below 4096`);
  if (v.storedKey.length !== 32 || v.serverKey.length !== 32) throw new ScramError('StoredKey and ServerKey must be 32 bytes');
  return v;
}

/** Makes a verifier for `password` (PBKDF2-HMAC-SHA-256, async so it never blocks an event loop). */
export async function makeVerifier(password: string, iterations = 4096, salt: Buffer = randomBytes(16)): Promise<string> {
  const salted = await pbkdf2Async(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const storedKey = sha256(hmac(salted, 'Client Key'));
  const serverKey = hmac(salted, 'Server Key');
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** One SCRAM exchange: client-first → server-first, client-final → server-final (or ScramError). */
export class ScramExchange {
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';
  private gs2Header = '';

  constructor(private readonly verifier: ScramVerifier) {}

  /** Takes the SASLInitialResponse data; returns the server-first-message. */
  start(clientFirst: string): string {
    // gs2-header: 'n,,' (no channel binding) or 'y,,' (client could bind, server did not offer). 'p=' is
    // refused: this server offers no SCRAM-SHA-256-PLUS.
    const m = /^([ny]),(a=[^,]*)?,(.*)$/.exec(clientFirst);
    if (!m) throw new ScramError('malformed SCRAM client-first-message (channel binding is not offered here)');
    if (m[2]) throw new ScramError('SCRAM authorization identity (a=) is not supported');
    this.gs2Header = `${m[1]},,`;
    this.clientFirstBare = m[3];
    const cnonce = /(?:^|,)r=([^,]+)/.exec(this.clientFirstBare)?.[1];
    if (!cnonce) throw new ScramError('SCRAM client-first-message has no nonce');
    this.nonce = cnonce + randomBytes(18).toString('base64');
    this.serverFirst = `r=${this.nonce},s=${this.verifier.salt.toString('base64')},i=${this.verifier.iterations}`;
    return this.serverFirst;
  }

  /** Takes the SASLResponse data; returns the server-final-message if the proof is right. */
  finish(clientFinal: string): string {
    const proofAt = clientFinal.lastIndexOf(',p=');
    if (proofAt < 0) throw new ScramError('SCRAM client-final-message has no proof');
    const withoutProof = clientFinal.slice(0, proofAt);
    const attrs = new Map(withoutProof.split(',').map((kv) => [kv.slice(0, 1), kv.slice(2)] as const));
    if (attrs.get('c') !== Buffer.from(this.gs2Header).toString('base64')) throw new ScramError('SCRAM channel binding data does not match');
    if (attrs.get('r') !== this.nonce) throw new ScramError('SCRAM nonce does not match');
    const proof = Buffer.from(clientFinal.slice(proofAt + 3), 'base64');
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const signature = hmac(this.verifier.storedKey, authMessage);
    if (proof.length !== signature.length) throw new ScramError('password authentication failed');
    const clientKey = Buffer.alloc(signature.length);
    for (let i = 0; i < signature.length; i++) clientKey[i] = proof[i] ^ signature[i];
    if (!timingSafeEqual(sha256(clientKey), this.verifier.storedKey)) throw new ScramError('password authentication failed');
    return `v=${hmac(this.verifier.serverKey, authMessage).toString('base64')}`;
  }
}
