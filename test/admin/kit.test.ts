// pg-tenant-proxy kit: prints the kit rendered for a config, applies it idempotently with the config's
// proof key, rotates keys, and refuses what would install a boundary no proxy can pass.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kitCommand } from '../../src/admin/kit.js';
import { proofKeyId } from '../../src/session/tenant-proof.js';
import { adminClient, primaryServer } from '../support/pg.js';

const server = primaryServer();
const dir = mkdtempSync(path.join(tmpdir(), 'pgtp-kit-'));
const KEY_A = 'kit-test-proof-key-a-at-least-32-bytes-long';
const KEY_B = 'kit-test-proof-key-b-at-least-32-bytes-long';

function config(key: string | null, setting = 'app.current_tenant'): string {
  const file = path.join(dir, `${key ? proofKeyId(key) : 'nokey'}-${setting}.yaml`);
  writeFileSync(
    file,
    `backend: { database: kit_cli, user: kit_cli_pool, password: "" }
auth: { jwt: { algorithms: [HS256], secret: "kit-test-jwt-secret-at-least-32-bytes-long" } }
tenant: { setting: ${setting}, proof_setting: app.kit_proof${key ? `, proof_key: "${key}"` : ''} }
`,
    { mode: 0o600 },
  );
  return file;
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const [o, e] = [process.stdout.write.bind(process.stdout), process.stderr.write.bind(process.stderr)];
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: await kitCommand(args), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

describe('pg-tenant-proxy kit', () => {
  const url = `postgres://${encodeURIComponent(server.user)}:${encodeURIComponent(server.password)}@${server.host}:${server.port}/kit_cli`;
  beforeAll(async () => {
    const a = await adminClient(server);
    await a.query('DROP DATABASE IF EXISTS kit_cli WITH (FORCE)');
    await a.query('CREATE DATABASE kit_cli');
    await a.end();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the SQL, rendered with the config\'s setting names, and never the key', async () => {
    const r = await run(['--config', config(KEY_A, 'myapp.tenant')]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("current_setting('myapp.tenant', true)");
    expect(r.out).toContain("current_setting('app.kit_proof', true)");
    expect(r.out).not.toContain(KEY_A);
    expect(r.out).not.toMatch(/@[A-Z_]+@/);
    const d = await run([]);
    expect(d.out).toContain("current_setting('app.current_tenant', true)");
  });

  it('--help, and refusals with a usage line', async () => {
    expect((await run(['--help'])).out).toContain('--apply');
    expect((await run(['--bogus'])).code).toBe(2);
    expect((await run(['--apply'])).err).toContain('--config');
    expect((await run(['--apply', '--config', config(null)])).err).toContain('tenant.proof_key is not set');
    expect((await run(['--database-url', url])).err).toContain('need --apply');
  });

  it('--apply installs the kit and the key; re-running is harmless; --retire-other-keys completes a rotation', async () => {
    const first = await run(['--apply', '--config', config(KEY_A), '--database-url', url]);
    expect(first.err).toBe('');
    expect(first.code).toBe(0);
    expect(first.out).toContain(proofKeyId(KEY_A));
    expect(first.out).not.toContain(KEY_A);
    expect((await run(['--apply', '--config', config(KEY_A), '--database-url', url])).code).toBe(0);
    expect((await run(['--apply', '--config', config(KEY_B), '--database-url', url])).code).toBe(0);
    const a = await adminClient(server, 'kit_cli');
    const kids = async (): Promise<string[]> => (await a.query('SELECT kid FROM tenancy.proof_keys ORDER BY kid')).rows.map((r) => r.kid);
    expect(await kids()).toEqual([proofKeyId(KEY_A), proofKeyId(KEY_B)].sort());
    expect((await run(['--apply', '--config', config(KEY_B), '--database-url', url, '--retire-other-keys'])).code).toBe(0);
    expect(await kids()).toEqual([proofKeyId(KEY_B)]);
    // The function verifies with the configured setting names.
    expect((await a.query("SELECT pg_get_functiondef('tenancy.current_tenant()'::regprocedure) AS d")).rows[0].d).toContain("'app.kit_proof'");
    await a.end();
  });

  it('a database it cannot reach: exit 1 and a message, nothing half-applied', async () => {
    const r = await run(['--apply', '--config', config(KEY_A), '--database-url', `postgres://nobody:wrong@${server.host}:${server.port}/kit_cli`]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('could not apply the kit');
  });
});
