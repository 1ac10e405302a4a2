// Test certificates made with the openssl CLI: a CA, server certificates for 127.0.0.1/localhost signed by it, and an unrelated CA.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** True when the openssl CLI runs (CI installs it in .ci/run); TLS tests are skipped without it. */
export const haveOpenssl = ((): boolean => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

export interface TestCerts {
  dir: string;
  /** The CA that signed the server certificates (PEM file path). */
  caFile: string;
  ca: Buffer;
  /** Another CA that signed nothing here: verifying against it must fail. */
  otherCaFile: string;
  /** Makes a server certificate (SAN IP:127.0.0.1, DNS:localhost) with this serial; returns its cert and key paths. */
  serverCert(name: string, serial: number): { certFile: string; keyFile: string };
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(dir: string, name: string): void {
  openssl(dir, [
    'req', '-x509', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=pg-tenant-proxy test ${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

/** Creates a fresh temp dir with a CA and another CA; server certificates are made on demand. */
export function makeTestCerts(): TestCerts {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgtp-certs-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'other-ca');
  writeFileSync(
    path.join(dir, 'server-ext.cnf'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  return {
    dir,
    caFile: path.join(dir, 'ca.pem'),
    ca: readFileSync(path.join(dir, 'ca.pem')),
    otherCaFile: path.join(dir, 'other-ca.pem'),
    serverCert(name, serial) {
      openssl(dir, ['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=localhost']);
      openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', String(serial), '-days', '2', '-out', `${name}.pem`, '-extfile', 'server-ext.cnf']);
      return { certFile: path.join(dir, `${name}.pem`), keyFile: path.join(dir, `${name}.key`) };
    },
  };
}
