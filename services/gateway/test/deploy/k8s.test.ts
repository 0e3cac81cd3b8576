// Every Kubernetes manifest under deploy/k8s/ against the Kubernetes OpenAPI
// schemas (the kubernetes-models validators, generated from them), then what
// the schemas cannot say: the grace period covers preStop + drain, the proxy
// trust matches the Service, the HPA points at the Deployment, and the optional
// custom metric is one the gateway exports.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { REPO } from '../helpers/haproxy.js';

const K8S = resolve(REPO, 'deploy/k8s');

type Obj = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string } };
interface Manifest {
  file: string;
  obj: Obj;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

function manifests(): Manifest[] {
  return yamlFiles(K8S).flatMap((f) =>
    parseAllDocuments(readFileSync(f, 'utf8')).map((d) => {
      assert.deepEqual(d.errors, [], `${f}: YAML errors`);
      return { file: relative(REPO, f), obj: d.toJSON() as Obj };
    }),
  );
}

/** The kubernetes-models class for an apiVersion and kind ('apps/v1' → kubernetes-models/apps/v1). */
async function modelFor(apiVersion: string, kind: string): Promise<new (o: unknown) => { validate(): void }> {
  const mod = (await import(`kubernetes-models/${apiVersion}`)) as Record<string, new (o: unknown) => { validate(): void }>;
  const model = mod[kind];
  assert.ok(model, `no schema for ${apiVersion} ${kind}`);
  return model;
}

async function validate(m: Manifest): Promise<void> {
  const Model = await modelFor(m.obj.apiVersion, m.obj.kind);
  try {
    new Model(m.obj).validate();
  } catch (e) {
    assert.fail(`${m.file}: ${m.obj.kind} ${m.obj.metadata.name} does not match the Kubernetes schema: ${(e as Error).message}`);
  }
}

test('every manifest under deploy/k8s validates against the Kubernetes schemas', async () => {
  const all = manifests();
  assert.deepEqual(
    all.map((m) => `${m.file}: ${m.obj.apiVersion} ${m.obj.kind}`).sort(),
    [
      'deploy/k8s/gateway.yaml: apps/v1 Deployment',
      'deploy/k8s/gateway.yaml: policy/v1 PodDisruptionBudget',
      'deploy/k8s/gateway.yaml: v1 Service',
      'deploy/k8s/hpa.yaml: autoscaling/v2 HorizontalPodAutoscaler',
      'deploy/k8s/optional/hpa-connections.yaml: autoscaling/v2 HorizontalPodAutoscaler',
      'deploy/k8s/optional/prometheus-adapter.yaml: v1 ConfigMap',
      'deploy/k8s/redis.yaml: apps/v1 StatefulSet',
      'deploy/k8s/redis.yaml: v1 Service',
    ],
  );
  for (const m of all) await validate(m);
});

test('the validator is not a rubber stamp: wrong types and missing required fields are refused', async () => {
  const deployment = manifests().find((m) => m.obj.kind === 'Deployment') as Manifest;
  const hpa = manifests().find((m) => m.file.endsWith('/hpa.yaml')) as Manifest;
  const broken: Array<[Manifest, (o: any) => void]> = [
    [deployment, (o) => (o.spec.template.spec.containers[0].ports[0].containerPort = '8080')],
    [deployment, (o) => delete o.spec.selector],
    [deployment, (o) => (o.spec.template.spec.terminationGracePeriodSeconds = 'forty')],
    [hpa, (o) => delete o.spec.maxReplicas],
    [hpa, (o) => (o.spec.metrics[0].resource.target = 65)],
  ];
  for (const [m, breakIt] of broken) {
    const obj = structuredClone(m.obj);
    breakIt(obj);
    const Model = await modelFor(obj.apiVersion, obj.kind);
    assert.throws(() => new Model(obj).validate(), `${m.file}: ${breakIt.toString()} should be invalid`);
  }
});

interface Container {
  env: Array<{ name: string; value?: string }>;
  readinessProbe: { httpGet: { path: string; port: string } };
  livenessProbe: { httpGet: { path: string } };
  resources: { requests: { cpu: string; memory: string }; limits: { memory: string } };
  securityContext: { runAsNonRoot: boolean; readOnlyRootFilesystem: boolean; allowPrivilegeEscalation: boolean };
  lifecycle: { preStop: { exec?: { command: string[] }; sleep?: { seconds: number } } };
}

test('gateway: probes, resources, non-root, read-only root; grace period covers preStop + DRAIN_SECONDS + the exit deadline', () => {
  const all = manifests();
  const dep = all.find((m) => m.obj.kind === 'Deployment')?.obj as unknown as {
    spec: { template: { spec: { terminationGracePeriodSeconds: number; containers: Container[] } } };
  };
  const pod = dep.spec.template.spec;
  const c = pod.containers[0] as Container;
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  assert.ok(c.resources.requests.cpu, 'a CPU request: the HPA measures utilization against it');
  assert.ok(c.resources.limits.memory);
  assert.deepEqual(
    [c.securityContext.runAsNonRoot, c.securityContext.readOnlyRootFilesystem, c.securityContext.allowPrivilegeEscalation],
    [true, true, false],
  );
  const cmd = c.lifecycle.preStop.exec?.command ?? [];
  assert.equal(cmd[0], 'sleep', 'preStop pauses so the balancer notices the pod leaving before the drain starts');
  const pause = Number(cmd[1]);
  assert.ok(pause >= 5, `preStop pause ${pause} s`);
  const drain = Number(c.env.find((e) => e.name === 'DRAIN_SECONDS')?.value ?? 10);
  assert.ok(pod.terminationGracePeriodSeconds >= pause + drain + 5, `grace ${pod.terminationGracePeriodSeconds} s ≥ preStop ${pause} + DRAIN_SECONDS ${drain} + 5`);
  const configSource = readFileSync(resolve(REPO, 'services/gateway/src/config.ts'), 'utf8');
  for (const e of c.env) assert.ok(configSource.includes(`'${e.name}'`), `${e.name} is not a gateway setting`);
});

test('proxy trust matches the Service: client addresses preserved (externalTrafficPolicy Local), no TRUSTED_PROXIES', () => {
  const all = manifests();
  const svc = all.find((m) => m.file.endsWith('gateway.yaml') && m.obj.kind === 'Service')?.obj as unknown as {
    spec: { type: string; externalTrafficPolicy: string };
  };
  assert.equal(svc.spec.type, 'LoadBalancer');
  assert.equal(svc.spec.externalTrafficPolicy, 'Local');
  const dep = all.find((m) => m.obj.kind === 'Deployment')?.obj as unknown as { spec: { template: { spec: { containers: Container[] } } } };
  const env = dep.spec.template.spec.containers.flatMap((c) => c.env.map((e) => e.name));
  assert.ok(!env.includes('TRUSTED_PROXIES'), 'the gateway trusts no forwarding header behind an L4 Service');
  const vars = dep.spec.template.spec.containers.flatMap((c) => c.env) as Array<{ name: string; value?: string }>;
  assert.equal(vars.find((e) => e.name === 'LOOPBACK_EXEMPT')?.value, '0', 'a sidecar on loopback never exempts every client');
});

test('HPA: autoscaling/v2 on CPU for the gateway Deployment, above the PDB; the optional one uses a metric the adapter serves', () => {
  const all = manifests();
  const pdb = all.find((m) => m.obj.kind === 'PodDisruptionBudget')?.obj as unknown as { spec: { minAvailable: number } };
  type Hpa = {
    metadata: { name: string };
    spec: {
      scaleTargetRef: { apiVersion: string; kind: string; name: string };
      minReplicas: number;
      maxReplicas: number;
      metrics: Array<{ type: string; resource?: { name: string }; pods?: { metric: { name: string } } }>;
    };
  };
  const hpas = all.filter((m) => m.obj.kind === 'HorizontalPodAutoscaler').map((m) => m.obj as unknown as Hpa);
  for (const h of hpas) {
    assert.deepEqual(h.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'chat-gateway' });
    assert.ok(h.spec.minReplicas > pdb.spec.minAvailable, 'minReplicas leaves the PDB room for one disruption');
    assert.ok(h.spec.maxReplicas > h.spec.minReplicas);
    assert.ok(h.spec.metrics.some((x) => x.type === 'Resource' && x.resource?.name === 'cpu'), 'scales on CPU');
  }
  const custom = hpas.flatMap((h) => h.spec.metrics.filter((x) => x.type === 'Pods').map((x) => x.pods?.metric.name));
  assert.deepEqual(custom, ['chat_connections_per_pod']);
  const adapter = all.find((m) => m.obj.kind === 'ConfigMap')?.obj as unknown as { data: Record<string, string> };
  const rules = (parse(adapter.data['config.yaml'] ?? '') as { rules: Array<{ seriesQuery: string; name: { as: string }; metricsQuery: string }> }).rules;
  assert.equal(rules[0]?.name.as, 'chat_connections_per_pod');
  const series = /^(\w+)\{/.exec(rules[0]?.seriesQuery ?? '')?.[1];
  assert.equal(series, 'chat_connections');
  assert.ok(readFileSync(resolve(REPO, 'services/gateway/src/metrics.ts'), 'utf8').includes(`'${series}'`), 'the gateway exports it');
});
