// The config keys of the admin console and metrics: users[].admin and metrics.tenant_top_k, validated with
// one-line errors naming the key.
import { describe, expect, it } from 'vitest';
import { makeVerifier } from '../../src/auth/scram.js';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/types.js';

const MINIMAL = `
backend: { database: app, user: app_pool, password: pw }
auth:
  jwt: { algorithms: [HS256], secret: "${'x'.repeat(32)}" }
`;

const error = (text: string): ConfigError => {
  try {
    parseConfig(MINIMAL + text, {});
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
};

describe('admin and metrics keys', () => {
  it('metrics.tenant_top_k defaults to 20 and is bounded', () => {
    expect(parseConfig(MINIMAL, {}).metrics).toEqual({ tenant_top_k: 20 });
    expect(parseConfig(MINIMAL + 'metrics: { tenant_top_k: 0 }', {}).metrics.tenant_top_k).toBe(0);
    expect(error('metrics: { tenant_top_k: 5000 }').key).toBe('metrics.tenant_top_k');
    expect(error('metrics: { tenant_top_k: -1 }').key).toBe('metrics.tenant_top_k');
    expect(error('metrics: { tenant_topk: 5 }').message).toContain('did you mean "tenant_top_k"');
  });

  it('users[].admin defaults to false and must be a boolean', async () => {
    const scram = await makeVerifier('pw-for-config-test');
    const users = (extra: string) => `users:\n  - { name: sre, scram: "${scram}", tenant: none${extra} }\n`;
    expect(parseConfig(MINIMAL + users(''), {}).users[0].admin).toBe(false);
    expect(parseConfig(MINIMAL + users(', admin: true'), {}).users[0].admin).toBe(true);
    const e = error(users(', admin: "yes"'));
    expect(e.key).toBe('users[0].admin');
    expect(e.message).toBe('config: users[0].admin: must be true or false');
  });
});
