// Deploy files cannot run here (no Docker engine): check them statically, with
// the real tools where they exist (haproxy -c, promtool) and against the settings
// the gateway actually reads.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { HAPROXY_CFG, REPO, haproxyEnv } from '../helpers/haproxy.js';
import { makeCerts } from '../helpers/tls.js';

const has = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
function requireTool(t: { skip(msg: string): void }, tool: string): boolean {
  if (has(tool)) return true;
  if (process.env['CI']) assert.fail(`${tool} is required in CI (.ci/run installs it)`);
  t.skip(`${tool} not installed`);
  return false;
}
const run = (cmd: string, args: string[], env: Record<string, string> = {}): { status: number | null; out: string } => {
  const r = spawnSync(cmd, args, { cwd: REPO, encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
};
const configSource = readFileSync(resolve(REPO, 'services/gateway/src/config.ts'), 'utf8');
const isSetting = (name: string): boolean => configSource.includes(`'${name}'`);

test('haproxy -c accepts deploy/haproxy/haproxy.cfg', (t) => {
  if (!requireTool(t, 'haproxy')) return;
  const gws = [1, 2, 3].map((i) => ({ port: 8080 + i, tcpPort: 7030 + i }));
  const r = run('haproxy', ['-c', '-f', HAPROXY_CFG], haproxyEnv(gws, { ws: 18080, tcp: 17037, stats: 18404 }));
  assert.equal(r.status, 0, r.out);
});

test('haproxy -c accepts the config with TLS on (LB_CERT from scripts/make-certs.sh), and refuses a missing certificate', (t) => {
  if (!requireTool(t, 'haproxy') || !requireTool(t, 'openssl')) return;
  const gws = [1, 2, 3].map((i) => ({ port: 8080 + i, tcpPort: 7030 + i }));
  const env = { ...haproxyEnv(gws, { ws: 18080, tcp: 17037, stats: 18404 }), LB_WSS_PORT: '18443', LB_TLS_PORT: '17443' };
  const r = run('haproxy', ['-c', '-f', HAPROXY_CFG], { ...env, LB_CERT: makeCerts().serverPem });
  assert.equal(r.status, 0, r.out);
  const missing = run('haproxy', ['-c', '-f', HAPROXY_CFG], { ...env, LB_CERT: '/nonexistent/server.pem' });
  assert.notEqual(missing.status, 0, 'TLS binds are really configured when LB_CERT is set');
});

test('promtool accepts the Prometheus config, the alert rules, and the rules pass their unit tests', (t) => {
  if (!requireTool(t, 'promtool')) return;
  for (const args of [
    ['check', 'config', 'deploy/prometheus/prometheus.yml'],
    ['check', 'rules', 'deploy/prometheus/alerts.yml'],
    ['test', 'rules', 'deploy/prometheus/alerts.test.yml'],
  ]) {
    const r = run('promtool', args);
    assert.equal(r.status, 0, `promtool ${args.join(' ')}: ${r.out}`);
  }
  // Alerts only use metric names the gateway exports.
  const rules = readFileSync(resolve(REPO, 'deploy/prometheus/alerts.yml'), 'utf8');
  const metricsSource = readFileSync(resolve(REPO, 'services/gateway/src/metrics.ts'), 'utf8');
  for (const m of new Set(rules.match(/chat_[a-z_]+/g) ?? [])) {
    const base = m.replace(/_(bucket|count|sum)$/, '');
    assert.ok(metricsSource.includes(`'${base}'`), `alerts use ${m}, which the gateway does not export`);
  }
});

test('compose: Redis with AOF, three gateways sharing REDIS_URL and CHAT_SECRET, HAProxy trusted, known settings only', () => {
  const doc = parse(readFileSync(resolve(REPO, 'deploy/compose.yaml'), 'utf8'), { merge: true }) as {
    services: Record<string, { environment?: Record<string, string>; command?: string[]; image?: string; networks?: Record<string, { ipv4_address?: string }> }>;
  };
  const s = doc.services;
  assert.ok(s['redis']?.command?.includes('--appendonly'));
  const trusted = s['haproxy']?.networks?.['default']?.ipv4_address;
  for (const name of ['gateway1', 'gateway2', 'gateway3']) {
    const env = s[name]?.environment ?? {};
    assert.equal(env['REDIS_URL'], 'redis://redis:6379', name);
    assert.ok(env['CHAT_SECRET'], `${name} has CHAT_SECRET`);
    assert.ok(String(env['TRUSTED_PROXIES']).includes(String(trusted)), `${name} trusts haproxy (${trusted})`);
    for (const k of Object.keys(env)) assert.ok(isSetting(k), `${name}: ${k} is not a gateway setting`);
  }
  assert.deepEqual(
    new Set(Object.keys(s['haproxy']?.environment ?? {}).filter((k) => /^GW\d_HOST$/.test(k))),
    new Set(['GW1_HOST', 'GW2_HOST', 'GW3_HOST']),
  );
});

test('compose: HAProxy serves TLS from a mounted certificate; Grafana loads the dashboard from provisioning files that exist', () => {
  type Svc = { environment?: Record<string, string>; volumes?: string[]; ports?: string[] };
  const s = (parse(readFileSync(resolve(REPO, 'deploy/compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, Svc> }).services;
  const h = s['haproxy'] as Svc;
  const env = h.environment ?? {};
  // host:container[:ro], where the host side may be ${TLS_DIR:-default}.
  const sides = (v: string): [string, string] => {
    const m = /^(.*):(\/[^:]+?)(?::ro)?$/.exec(v);
    return [m?.[1] ?? '', m?.[2] ?? ''];
  };
  const mount = (h.volumes ?? []).map(sides).find((v) => env['LB_CERT']?.startsWith(`${v[1]}/`));
  assert.ok(mount, `the certificate ${env['LB_CERT']} comes from a mounted folder`);
  for (const port of [env['LB_WSS_PORT'], env['LB_TLS_PORT']]) assert.ok(h.ports?.includes(`${port}:${port}`), `port ${port} published`);
  const g = s['grafana'] as Svc;
  const host = (v: string): string => resolve(REPO, 'deploy', sides(v)[0]);
  for (const v of g.volumes ?? []) assert.ok(existsSync(host(v)), `${v}: the host side exists`);
  const ds = parse(readFileSync(resolve(REPO, 'deploy/grafana/provisioning/datasources/prometheus.yaml'), 'utf8')) as { datasources: Array<{ type: string; url: string }> };
  assert.deepEqual([ds.datasources[0]?.type, ds.datasources[0]?.url], ['prometheus', 'http://prometheus:9090']);
  const dashMount = sides((g.volumes ?? []).find((v) => v.includes('chat-gateway.json')) ?? '')[1];
  const providers = parse(readFileSync(resolve(REPO, 'deploy/grafana/provisioning/dashboards/chat.yaml'), 'utf8')) as { providers: Array<{ options: { path: string } }> };
  assert.ok(dashMount.startsWith(`${providers.providers[0]?.options.path}/`), 'the dashboard is mounted where the provider looks');
});

test('k8s: redis.yaml parses (schemas, grace period, HPA and proxy trust: k8s.test.ts)', () => {
  for (const d of parseAllDocuments(readFileSync(resolve(REPO, 'deploy/k8s/redis.yaml'), 'utf8'))) assert.equal(d.errors.length, 0);
});

test('the Redis Lua scripts are compiled in: the embedded module is current, and nothing copies .lua files by hand', () => {
  const check = spawnSync(process.execPath, [resolve(REPO, 'scripts/embed-lua.mjs'), '--check'], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
  for (const f of ['Dockerfile', 'Makefile', 'loadtest/README.md'])
    assert.doesNotMatch(readFileSync(resolve(REPO, f), 'utf8'), /scripts\/\*\.lua|redis\/scripts /, `${f} copies Lua scripts by hand`);
  assert.match(readFileSync(resolve(REPO, 'Dockerfile'), 'utf8'), /FROM node:20-bookworm/);
});
