// The Helm chart (helm/pg-tenant-proxy) against the proxy's own config schema. No helm binary here: the test
// reads values.yaml and the templates, renders the config the chart writes the way its
// "pg-tenant-proxy.config" helper does (and checks the helper says so), and validates it with validateConfig.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';

const CHART = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../helm/pg-tenant-proxy');
const read = (f: string): string => readFileSync(path.join(CHART, f), 'utf8');
type Tree = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const values = parse(read('values.yaml')) as Tree;
const helpers = read('templates/_helpers.tpl');
const deployment = read('templates/deployment.yaml');
const service = read('templates/service.yaml');
const notes = read('templates/NOTES.txt');

/** What "pg-tenant-proxy.poolSize" renders: the per-pod share of pool.totalBudget (surge pods counted), or config.pool.size. */
function poolSize(v: Tree): number {
  const total = Number(v.pool?.totalBudget ?? 0);
  if (!(total > 0)) return Number(v.config.pool.size);
  const surge = v.strategy?.rollingUpdate?.maxSurge;
  if (typeof surge === 'string') throw new Error('pool.totalBudget needs strategy.rollingUpdate.maxSurge as a number of pods');
  const pods = Number(v.replicaCount) + Number(surge ?? 0);
  const share = Math.floor(total / pods);
  if (share < 1) throw new Error(`pool.totalBudget ${total} cannot cover ${pods} pods`);
  const workers = v.config.workers ?? 1;
  if (typeof workers === 'number' && share < workers) throw new Error(`fewer connections than config.workers ${workers}`);
  return share;
}

/** What templates/_helpers.tpl "pg-tenant-proxy.config" renders into the ConfigMap. */
function renderedConfig(v: Tree): Tree {
  const config = structuredClone(v.config) as Tree;
  config.pool = { ...config.pool, size: poolSize(v) };
  if (v.tls.enabled) config.listen.tls = { ...(config.listen.tls ?? {}), cert_file: `${v.tls.mountPath}/tls.crt`, key_file: `${v.tls.mountPath}/tls.key` };
  return config;
}

/** The branch of a template between `{{- if COND }}` and its own `{{- else }}` (or `{{- end }}`), nesting-aware. */
function ifBranch(text: string, cond: string, which: 'then' | 'else'): string {
  const start = text.indexOf(`{{- if ${cond} }}`);
  if (start < 0) throw new Error(`no {{- if ${cond} }} in template`);
  const tag = /\{\{-?\s*(if|with|range|define|else|end)\b[^}]*\}\}/g;
  tag.lastIndex = start + 1;
  let depth = 1;
  let elseAt = -1;
  let m: RegExpExecArray | null;
  let bodyStart = text.indexOf('}}', start) + 2;
  while ((m = tag.exec(text))) {
    if (['if', 'with', 'range', 'define'].includes(m[1])) depth++;
    else if (m[1] === 'else' && depth === 1 && !/else if/.test(m[0])) elseAt = m.index;
    else if (m[1] === 'end' && --depth === 0) {
      if (which === 'then') return text.slice(bodyStart, elseAt >= 0 ? elseAt : m.index);
      return elseAt >= 0 ? text.slice(text.indexOf('}}', elseAt) + 2, m.index) : '';
    }
  }
  throw new Error(`unterminated {{- if ${cond} }}`);
}

describe('Helm chart', () => {
  const env = { PGTP_BACKEND_PASSWORD: 'backend-password', PGTP_JWT_SECRET: 'a-jwt-secret-of-at-least-thirty-two-bytes' };

  it('the config helper adds listen.tls from the mounted Secret, as this test renders it', () => {
    expect(read('templates/configmap.yaml')).toContain('include "pg-tenant-proxy.config" .');
    const helper = helpers.slice(helpers.indexOf('define "pg-tenant-proxy.config"'));
    expect(helper).toContain('deepCopy .Values.config');
    expect(helper).toContain('{{- if .Values.tls.enabled }}');
    expect(helper).toContain('"cert_file" (printf "%s/tls.crt" .Values.tls.mountPath)');
    expect(helper).toContain('"key_file" (printf "%s/tls.key" .Values.tls.mountPath)');
    expect(helper).toContain('set $config.listen "tls"');
    expect(helper).toContain('set $config.pool "size" (include "pg-tenant-proxy.poolSize" . | atoi)');
  });

  it('pool.totalBudget renders each pod\'s pool.size as floor(budget / (replicas + maxSurge)), split over config.workers, and the result validates', () => {
    const poolHelper = helpers.slice(helpers.indexOf('define "pg-tenant-proxy.poolSize"'));
    expect(poolHelper).toContain('div $total $pods');
    expect(poolHelper).toContain('$surge = int .');
    expect(values.pool.totalBudget).toBe(0);
    expect(renderedConfig(values).pool.size).toBe(values.config.pool.size);
    const budgeted = { ...values, replicaCount: 3, pool: { totalBudget: 50 }, strategy: { rollingUpdate: { maxSurge: 1 } }, config: { ...values.config, workers: 4 } };
    const config = validateConfig(renderedConfig(budgeted), env, '/');
    expect(config.pool.size).toBe(12);
    expect(config.workers).toBe(4);
    // A budget that cannot give each worker a connection refuses to render, as the helper's fail does.
    expect(() => renderedConfig({ ...budgeted, pool: { totalBudget: 10 } })).toThrow(/config.workers/);
    expect(poolHelper).toMatch(/lt \(int \$share\) \(int \$workers\)\) -\}\}\n\{\{- fail/);
  });

  it('the Grafana dashboard ConfigMap is optional (grafanaDashboard.enabled, default false) and its JSON ships with the chart', () => {
    expect(values.grafanaDashboard.enabled).toBe(false);
    expect(read('templates/grafana-dashboard.yaml')).toContain('{{- if (.Values.grafanaDashboard).enabled }}');
    expect(read('templates/grafana-dashboard.yaml')).toContain('.Files.Get "dashboards/pg-tenant-proxy.json"');
    expect(() => JSON.parse(read('dashboards/pg-tenant-proxy.json'))).not.toThrow();
    expect(read('README.md')).toContain('`grafanaDashboard.enabled`');
  });

  it('the config it writes with the default values passes the proxy\'s validation, with TLS on and tokens refused in cleartext', () => {
    const config = validateConfig(renderedConfig(values), env, '/');
    expect(config.listen.tls?.cert_file).toBe(`${values.tls.mountPath}/tls.crt`);
    expect(config.listen.plaintext_tokens).toBe('refuse');
    // Reachable from the kubelet's probes and other pods.
    expect(config.listen.host).toBe('0.0.0.0');
    expect(config.admin.host).toBe('0.0.0.0');
    expect(config.admin.port).not.toBe(0);
  });

  it('every environment variable the config reads is set by the Deployment', () => {
    const envRefs = JSON.stringify(values.config).match(/"env":"([A-Z0-9_]+)"/g)!.map((s) => s.slice(7, -1));
    expect(envRefs.length).toBeGreaterThan(0);
    for (const name of envRefs) expect(deployment).toMatch(new RegExp(`- name: ${name}\\n`));
  });

  it('container ports come from the config, the Service targets them by name, and the probes hit served paths', () => {
    expect(deployment).toMatch(/- name: postgres\s+containerPort: \{\{ \.Values\.config\.listen\.port \}\}/);
    expect(deployment).toMatch(/- name: admin\s+containerPort: \{\{ \.Values\.config\.admin\.port \}\}/);
    expect(service).toMatch(/targetPort: postgres/);
    expect(service).toMatch(/targetPort: admin/);
    const http = readFileSync(path.join(CHART, '../../src/admin/http.ts'), 'utf8');
    for (const [probe, p] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']]) {
      expect(deployment).toMatch(new RegExp(`${probe}:\\s+httpGet:\\s+path: ${p}\\s+port: admin`));
      expect(http).toContain(`path === '${p}'`);
    }
    expect(read('templates/servicemonitor.yaml')).toMatch(/port: admin\s+path: \/metrics/);
  });

  it('mounts the kubernetes.io/tls Secret where the config points, and cert-manager writes that same Secret', () => {
    const mount = ifBranch(deployment, '.Values.tls.enabled', 'then');
    expect(mount).toMatch(/- name: tls\s+mountPath: \{\{ \.Values\.tls\.mountPath \}\}/);
    expect(deployment).toMatch(/- name: tls\s+secret:\s+secretName: \{\{ include "pg-tenant-proxy.tlsSecretName" \. \}\}/);
    expect(read('templates/certificate.yaml')).toMatch(/secretName: \{\{ include "pg-tenant-proxy.tlsSecretName" \. \}\}/);
    // Not nested in the read-only ConfigMap mount.
    expect(values.tls.mountPath.startsWith('/etc/pg-tenant-proxy/')).toBe(false);
  });

  it('NOTES.txt connects the way the default config accepts (TLS), and sslmode=disable only when TLS is off', () => {
    expect(values.tls.enabled).toBe(true);
    expect(ifBranch(notes, '.Values.tls.enabled', 'then')).toMatch(/psql "[^"]*sslmode=require"/);
    expect(ifBranch(notes, '.Values.tls.enabled', 'then')).not.toContain('sslmode=disable');
    expect(ifBranch(notes, '.Values.tls.enabled', 'else')).toContain('sslmode=disable');
  });

  it('with TLS off and tokens refused, the chart fails the install instead of deploying a proxy that refuses every token', () => {
    const off = { ...values, tls: { ...values.tls, enabled: false } };
    // The proxy itself would start (static users could still log in), so the chart must catch it.
    expect(validateConfig(renderedConfig(off), env, '/').listen.plaintext_tokens).toBe('refuse');
    expect(deployment).toMatch(/if and \(not \.Values\.tls\.enabled\) \(eq \(\.Values\.config\.listen\.plaintext_tokens \| default "refuse"\) "refuse"\)[^\n]*\n\{\{- fail /);
  });

  it('the PrometheusRule renders the two 80 % pool alerts and the 53300 alert, on gauges the proxy exports', () => {
    const rule = read('templates/prometheusrule.yaml');
    expect(values.prometheusRule.enabled).toBe(false);
    expect(rule.startsWith('{{- if .Values.prometheusRule.enabled }}')).toBe(true);
    expect(values.prometheusRule.capUtilisation).toBe(0.8);
    expect(values.prometheusRule.overflowUtilisation).toBe(0.8);
    // Render the template's values in (the only template syntax left is Prometheus's own {{ $labels }}).
    const rendered = rule
      .replace(/^\{\{-? (if|end)[^\n]*\n/gm, '')
      .replace(/^\{\{- \/\*.*\*\/ -\}\}\n/gm, '')
      .replace(/\{\{ "(\{\{[^"]*\}\})" \}\}/g, '$1')
      .replace(/\{\{ \.Values\.prometheusRule\.(\w+) \}\}/g, (_, k: string) => String(values.prometheusRule[k]))
      .replace(/\{\{ \.Release\.Namespace \}\}/g, 'ns')
      .replace(/\{\{ include "pg-tenant-proxy\.fullname" \. \}\}/g, 'tp')
      .replace(/namespace: \{\{[^\n]*\n/, 'namespace: ns\n')
      .replace(/ {4}\{\{-[^\n]*\n/g, '');
    const doc = parse(rendered) as Tree;
    expect(doc.kind).toBe('PrometheusRule');
    const rules = doc.spec.groups[0].rules as Tree[];
    const byName = new Map(rules.map((r) => [r.alert as string, r.expr as string]));
    expect([...byName.keys()]).toEqual(['PgTenantProxyPoolSaturated', 'PgTenantProxyOverflowSaturated', 'PgTenantProxyAcquireTimeouts']);
    expect(byName.get('PgTenantProxyPoolSaturated')).toMatch(/pgtp_pool_utilisation\{namespace="ns"\}\) >= 0\.8$/);
    expect(byName.get('PgTenantProxyOverflowSaturated')).toMatch(/pgtp_pool_overflow_utilisation\{namespace="ns"\}\) >= 0\.8$/);
    expect(byName.get('PgTenantProxyAcquireTimeouts')).toMatch(/increase\(pgtp_pool_acquire_failures_total\{namespace="ns", sqlstate="53300"\}\[5m\]\)\) > 0$/);
    // Every metric an alert reads is one the proxy registers.
    const metrics = readFileSync(path.join(CHART, '../../src/admin/metrics.ts'), 'utf8');
    for (const m of ['pgtp_pool_utilisation', 'pgtp_pool_overflow_utilisation', 'pgtp_pool_acquire_failures_total']) expect(metrics).toContain(`'${m}'`);
  });

  it('terminationGracePeriodSeconds agrees with shutdown.drain_timeout_ms: derived as preStop + drain + 5 s, and a smaller one fails the render', () => {
    // The template's derivation, as this test computes it.
    expect(deployment).toContain('{{- $drainS := div (add (int (dig "shutdown" "drain_timeout_ms" 25000 .Values.config)) 999) 1000 -}}');
    expect(deployment).toContain('{{- $minGrace := add (int .Values.preStopSleepSeconds) $drainS 5 -}}');
    expect(deployment).toMatch(/\{\{- if lt \$grace \$minGrace -\}\}\n\{\{- fail /);
    expect(deployment).toContain('terminationGracePeriodSeconds: {{ $grace }}');
    expect(deployment).not.toContain('terminationGracePeriodSeconds: {{ .Values');
    const grace = (v: Tree): number => {
      const min = Number(v.preStopSleepSeconds) + Math.ceil(Number(v.config.shutdown?.drain_timeout_ms ?? 25000) / 1000) + 5;
      if (!v.terminationGracePeriodSeconds) return min;
      if (Number(v.terminationGracePeriodSeconds) < min) throw new Error('terminationGracePeriodSeconds must be at least');
      return Number(v.terminationGracePeriodSeconds);
    };
    expect(values.terminationGracePeriodSeconds).toBe('');
    const config = validateConfig(renderedConfig(values), env, '/');
    expect(config.shutdown.drain_timeout_ms).toBe(values.config.shutdown.drain_timeout_ms);
    // The pod outlives the preStop sleep and the whole drain, with a margin for cancels and closing backends.
    expect(grace(values)).toBe(values.preStopSleepSeconds + Math.ceil(config.shutdown.drain_timeout_ms / 1000) + 5);
    expect(grace(values)).toBeGreaterThan(values.preStopSleepSeconds + config.shutdown.drain_timeout_ms / 1000);
    expect(grace({ ...values, config: { ...values.config, shutdown: { drain_timeout_ms: 60_500 } } })).toBe(values.preStopSleepSeconds + 61 + 5);
    expect(() => grace({ ...values, terminationGracePeriodSeconds: 10 })).toThrow(/at least/);
  });

  it('the chart README tells the truth about TLS and the chart\'s location', () => {
    const readme = read('README.md');
    expect(readme).not.toMatch(/declines TLS/);
    expect(readme).toContain('helm install tenant-proxy helm/pg-tenant-proxy');
    expect(readme).toContain('sslmode=require');
  });
});
