// Client-side TLS: the certificate context (reloadable), the server-side upgrade after SSLRequest, and the rule on cleartext passwords without TLS.
// Reference: https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { ListenTlsConfig } from '../config/types.js';

/** The single byte that accepts an SSLRequest; the client starts its TLS handshake after it. */
export const ACCEPT_SSL = Buffer.from('S');

/** The proxy's TLS certificate and policy for client connections; `reload()` swaps the certificate for new connections. */
export class ClientTls {
  private context: tls.SecureContext;

  constructor(
    readonly config: ListenTlsConfig,
    private readonly log?: Logger,
  ) {
    this.context = buildContext(config);
  }

  /**
   * Re-reads cert_file and key_file into a new context used by connections from now on (open ones keep
   * theirs). On any error the old context stays and the error is logged; returns whether it was swapped.
   */
  reload(): boolean {
    try {
      this.context = buildContext(this.config);
    } catch (e) {
      this.log?.error({ event: 'TLS_RELOAD_FAILED', err: (e as Error).message }, 'TLS certificate reload failed; keeping the previous certificate');
      return false;
    }
    this.log?.info({ event: 'TLS_RELOADED', cert_file: this.config.cert_file }, 'TLS certificate reloaded');
    return true;
  }

  /**
   * Wraps a client socket that was just sent 'S' (or, `direct`, whose first bytes are a ClientHello: PostgreSQL
   * 17's sslnegotiation=direct) and resolves once the TLS handshake is done. The wrap
   * happens synchronously, so no byte of the client's handshake can be read as plaintext.
   */
  upgrade(socket: net.Socket, direct = false): Promise<tls.TLSSocket> {
    // ALPN "postgresql" as the server offers it: a client naming only other protocols is refused in the
    // handshake, and a direct-TLS client must name it (PostgreSQL refuses direct TLS without ALPN).
    const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: this.context, requestCert: false, ALPNProtocols: ['postgresql'] });
    // The session and the login read and write `secure`; errors and closes on either side end both.
    secure.on('error', () => secure.destroy());
    secure.once('close', () => socket.destroy());
    socket.once('close', () => secure.destroy());
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => {
        secure.removeListener('close', onClose);
        reject(new TlsHandshakeError(`TLS handshake failed: ${e.message}`));
      };
      const onClose = (): void => {
        secure.removeListener('error', onError);
        reject(new TlsHandshakeError('client closed the connection during the TLS handshake'));
      };
      secure.once('error', onError);
      secure.once('close', onClose);
      secure.once('secure', () => {
        secure.removeListener('error', onError);
        secure.removeListener('close', onClose);
        if (direct && secure.alpnProtocol !== 'postgresql') {
          secure.destroy();
          reject(new TlsHandshakeError('direct TLS connection without the ALPN protocol "postgresql"'));
          return;
        }
        resolve(secure);
      });
    });
  }

}

/** The handshake after 'S' failed; the connection is already unusable, so nothing more is sent. */
export class TlsHandshakeError extends Error {
  override readonly name = 'TlsHandshakeError';
}

/** Builds the client TLS state from config, or null (and a startup warning) when listen.tls is not set. */
export function createClientTls(
  config: ListenTlsConfig | undefined,
  log?: Logger,
  plaintextTokens: 'refuse' | 'loopback' | 'allow' = 'refuse',
): ClientTls | null {
  if (!config) {
    const what =
      plaintextTokens === 'refuse'
        ? 'token logins will be refused (listen.plaintext_tokens: refuse); only static SCRAM users can log in'
        : plaintextTokens === 'loopback'
          ? 'token logins are accepted in cleartext from loopback addresses only'
          : 'clients send their token in cleartext (listen.plaintext_tokens: allow)';
    log?.warn({ event: 'TLS_DISABLED', plaintext_tokens: plaintextTokens }, `listen.tls is not configured: ${what}; set listen.tls.cert_file and key_file`);
    return null;
  }
  return new ClientTls(config, log);
}

function buildContext(config: ListenTlsConfig): tls.SecureContext {
  const cert = readPem(config.cert_file, 'listen.tls.cert_file');
  const key = readPem(config.key_file, 'listen.tls.key_file');
  try {
    return tls.createSecureContext({ cert, key, minVersion: config.min_version });
  } catch (e) {
    throw new Error(`listen.tls: cannot use ${config.cert_file} with ${config.key_file}: ${(e as Error).message}`);
  }
}

function readPem(path: string, key: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new Error(`${key}: cannot read ${path}: ${err.code ?? err.message}`);
  }
}

/** 127.0.0.0/8, ::1, and their IPv4-mapped form. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (net.isIPv4(v4)) return v4.startsWith('127.');
  return address === '::1';
}
