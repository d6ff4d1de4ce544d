/**
 * deploy/kubernetes/ and deploy/kserve/: every core object valid for kubernetes-models' schemas, KServe's objects and
 * the Deployment's containers checked strictly against KServe's CRD schema (fixtures/kserve/crd-subset.json, cut by
 * scripts/kserve-crd-subset.js), and the facts that tie the manifests to the server: the probes' routes and ports,
 * the drain inside the grace period, the config the ConfigMap holds, the layout the entrypoint reads.
 */

import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ObjectMeta } from '@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta';
import { Deployment, type IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler, type IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap, type IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { type IPersistentVolumeClaim, PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { type IService, Service } from 'kubernetes-models/v1/Service';
import { parseAllDocuments } from 'yaml';
import { buildEntrypointProgram } from '../../src/cli/entrypoint-main.js';
import { DEFAULT_MODEL_DIR, KSERVE_HTTP_PORT, planEntrypoint } from '../../src/cli/entrypoint-plan.js';
import { loadConfig, parseProperties } from '../../src/server/config.js';
import { packagePath } from '../../src/util/package-info.js';
import { type CrdSchema, checkCrdSchema } from '../helpers/crd-schema.js';
import { tempDir } from '../helpers/util.js';

type Doc = { apiVersion: string; kind: string; metadata: { name: string; [k: string]: unknown }; [k: string]: unknown };

async function docsIn(dir: string): Promise<Map<string, Doc>> {
  const out = new Map<string, Doc>();
  for (const f of (await readdir(packagePath('deploy', dir))).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(await readFile(packagePath('deploy', dir, f), 'utf8'))) {
      assert.deepEqual(doc.errors, [], `${dir}/${f}`);
      const value = doc.toJS() as Doc;
      out.set(`${value.kind}/${value.metadata?.name ?? f}`, { ...value, file: f });
    }
  }
  return out;
}

const k8s = await docsIn('kubernetes');
const kserve = await docsIn('kserve');
const subset = JSON.parse(await readFile(packagePath('fixtures', 'kserve', 'crd-subset.json'), 'utf8')) as {
  kinds: Record<string, CrdSchema>;
};
const version = (JSON.parse(await readFile(packagePath('package.json'), 'utf8')) as { version: string }).version;

function get<T>(docs: Map<string, Doc>, key: string): T & { file: string } {
  const d = docs.get(key);
  assert.ok(d, `${key} is in the manifests (have: ${[...docs.keys()].join(', ')})`);
  return d as unknown as T & { file: string };
}

const deployment = get<IDeployment>(k8s, 'Deployment/mar-tools');
const pod = deployment.spec!.template;
const container = pod.spec!.containers[0]!;
const configMap = get<IConfigMap>(k8s, 'ConfigMap/mar-tools-config');
const properties = parseProperties(configMap.data!['config.properties']!);

/** The port a probe or Service names: a number, or a container port's name. */
function containerPort(port: number | string): number {
  if (typeof port === 'number') return port;
  const p = container.ports?.find((cp) => cp.name === port);
  assert.ok(p, `container port ${port} is declared`);
  return p.containerPort;
}

test('every core object is valid for its Kubernetes schema (kubernetes-models)', () => {
  const models: Record<string, new (data: never) => { validate(): void }> = {
    'v1/ConfigMap': ConfigMap,
    'v1/Service': Service,
    'v1/PersistentVolumeClaim': PersistentVolumeClaim,
    'apps/v1/Deployment': Deployment,
    'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
    'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  };
  const seen: string[] = [];
  for (const [key, doc] of k8s) {
    if (doc.kind === 'Kustomization') continue;
    const Model = models[`${doc.apiVersion}/${doc.kind}`];
    assert.ok(Model, `${key}: no model for ${doc.apiVersion} ${doc.kind}`);
    const { file: _file, ...object } = doc;
    assert.doesNotThrow(() => new Model(object as never).validate(), `${key} (${doc['file']})`);
    seen.push(doc.kind);
  }
  assert.deepEqual(seen.sort(), [
    'ConfigMap',
    'Deployment',
    'HorizontalPodAutoscaler',
    'PersistentVolumeClaim',
    'PodDisruptionBudget',
    'Service',
  ]);
});

test("KServe's objects and the Deployment's containers have only fields KServe's CRD schema declares, with its types", () => {
  for (const [key, doc] of kserve) {
    const schema = subset.kinds[`${doc.kind}@${doc.apiVersion}`];
    assert.ok(schema, `${key}: ${doc.kind} ${doc.apiVersion} is in fixtures/kserve/crd-subset.json`);
    const { file: _file, metadata, ...object } = doc;
    assert.deepEqual(checkCrdSchema(schema, object), [], `${key} (run scripts/kserve-crd-subset.js after adding a field)`);
    assert.doesNotThrow(() => new ObjectMeta(metadata as never).validate(), `${key} metadata`);
  }
  for (const c of pod.spec!.containers) {
    assert.deepEqual(checkCrdSchema(subset.kinds['Container@v1']!, c), [], `container ${c.name}`);
  }
  // the checker finds what it is for
  assert.deepEqual(checkCrdSchema(subset.kinds['Container@v1']!, { name: 'x', readinesProbe: {}, ports: [{ containerPort: '80' }] }), [
    'readinesProbe: unknown field',
    'ports[0].containerPort: expected integer, got string "80"',
  ]);
});

test('the kustomization lists every manifest and names the image the Deployment runs', async () => {
  const k = (parseAllDocuments(await readFile(packagePath('deploy', 'kubernetes', 'kustomization.yaml'), 'utf8'))[0]!.toJS() ?? {}) as {
    resources: string[];
    images: Array<{ name: string; newTag: string }>;
  };
  const files = (await readdir(packagePath('deploy', 'kubernetes'))).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
  assert.deepEqual([...k.resources].sort(), files.sort());
  assert.deepEqual(k.images, [{ name: container.image!.split(':')[0], newTag: version }]);
});

test('probes: readiness on /v2/health/ready and liveness on /v2/health/live, on the inference port of the config', () => {
  assert.equal(container.readinessProbe?.httpGet?.path, '/v2/health/ready');
  assert.equal(container.livenessProbe?.httpGet?.path, '/v2/health/live');
  assert.equal(container.startupProbe?.httpGet?.path, '/v2/health/live', 'a slow model load is not a dead server');
  for (const probe of [container.readinessProbe, container.livenessProbe, container.startupProbe]) {
    assert.equal(containerPort(probe!.httpGet!.port), KSERVE_HTTP_PORT);
  }
  assert.equal(properties.get('inference_address'), `http://0.0.0.0:${KSERVE_HTTP_PORT}`);
  // the Prometheus annotations point at the metrics listener of the config
  assert.equal(pod.metadata?.annotations?.['prometheus.io/scrape'], 'true');
  assert.equal(pod.metadata?.annotations?.['prometheus.io/path'], '/metrics');
  const metricsPort = Number(/:(\d+)$/.exec(properties.get('metrics_address')!)![1]);
  assert.equal(Number(pod.metadata?.annotations?.['prometheus.io/port']), metricsPort);
  assert.equal(containerPort('metrics'), metricsPort);
  assert.equal(containerPort('grpc'), 7070, "TorchServe's gRPC inference port, the server's default");
});

test("terminationGracePeriodSeconds covers the preStop pause, shutdown_timeout's drain and the workers' stop", () => {
  const preStop = container.lifecycle?.preStop?.exec?.command;
  assert.deepEqual(preStop?.slice(0, 1), ['sleep']);
  const pause = Number(preStop![1]);
  const drain = Number(properties.get('shutdown_timeout'));
  assert.ok(drain > 0);
  // a worker gets EOF, then SIGTERM after 2 s and SIGKILL after 2 more (worker-pool.ts STOP_GRACE_MS): 5 s with margin
  assert.ok(pod.spec!.terminationGracePeriodSeconds! >= pause + drain + 5, `${pod.spec!.terminationGracePeriodSeconds} s`);
});

test('the ConfigMap is a config the server starts with: every key known, JSON logs, no tokens, Prometheus metrics', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'config.properties');
  await writeFile(file, configMap.data!['config.properties']!);
  const config = loadConfig({ dialect: 'torchserve', configFile: file, cwd: dir, env: {} });
  assert.deepEqual(config.ignoredKeys, []);
  assert.equal(config.logFormat, 'json');
  assert.equal(config.tokenAuthorization, false);
  assert.equal(config.metricsMode, 'prometheus');
  assert.equal(config.managementAddress.url, 'http://127.0.0.1:8081', 'management stays inside the pod');

  // the entrypoint reads it from the mounts: config/ from the ConfigMap, model-store/ from the claim
  const mounts = new Map(container.volumeMounts!.map((m) => [m.mountPath, m]));
  const volumes = new Map(pod.spec!.volumes!.map((v) => [v.name, v]));
  const configMount = mounts.get(`${DEFAULT_MODEL_DIR}/config`);
  assert.equal(volumes.get(configMount!.name)?.configMap?.name, configMap.metadata!.name);
  const storeMount = mounts.get(`${DEFAULT_MODEL_DIR}/model-store`);
  assert.equal(storeMount?.readOnly, true);
  const claim = get<IPersistentVolumeClaim>(k8s, 'PersistentVolumeClaim/mar-tools-model-store');
  assert.equal(volumes.get(storeMount!.name)?.persistentVolumeClaim?.claimName, claim.metadata!.name);
  assert.ok(claim.spec!.accessModes!.includes('ReadWriteMany'), 'replicas on several nodes mount it at once');
  // with readOnlyRootFilesystem, the extraction cache (/tmp) and the working directory need volumes
  assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
  for (const path of ['/tmp', '/home/model-server']) assert.ok(volumes.get(mounts.get(path)?.name ?? '')?.emptyDir, path);

  const modelDir = join(dir, 'mnt-models');
  await mkdir(join(modelDir, 'config'), { recursive: true });
  await mkdir(join(modelDir, 'model-store'));
  await writeFile(join(modelDir, 'config', 'config.properties'), configMap.data!['config.properties']!);
  const flags = new Set(buildEntrypointProgram().options.flatMap((o) => [o.long, o.short].filter(Boolean)));
  for (const arg of container.args ?? []) assert.ok(flags.has(arg.split('=')[0]!), `${arg} is an entrypoint flag`);
  const plan = planEntrypoint({ modelDir, configSnapshots: container.args?.includes('--ncs') ? false : undefined }, {});
  assert.equal(plan.inferenceUrl, `http://0.0.0.0:${KSERVE_HTTP_PORT}`);
  assert.equal(plan.properties['grpc_inference_address'], '0.0.0.0', 'gRPC is reachable through the Service');
});

test('the Service, the HPA and the disruption budget find the pods; the HPA has CPU requests to scale on', () => {
  const labels = pod.metadata!.labels!;
  const service = get<IService>(k8s, 'Service/mar-tools');
  for (const [k, v] of Object.entries(service.spec!.selector!)) assert.equal(labels[k], v);
  for (const p of service.spec!.ports!) assert.equal(containerPort(p.targetPort as string), p.port, `${p.name} forwards to its own port`);
  assert.equal(service.spec!.ports!.find((p) => p.name === 'grpc')?.appProtocol, 'kubernetes.io/h2c');

  const hpa = get<IHorizontalPodAutoscaler>(k8s, 'HorizontalPodAutoscaler/mar-tools');
  assert.deepEqual(hpa.spec!.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata!.name });
  assert.equal(hpa.spec!.metrics![0]!.resource?.name, 'cpu');
  for (const c of pod.spec!.containers) assert.ok(c.resources?.requests?.['cpu'], `${c.name} requests CPU`);
  assert.ok(hpa.spec!.minReplicas! >= 2);

  const pdb = k8s.get('PodDisruptionBudget/mar-tools') as unknown as { spec: { selector: { matchLabels: Record<string, string> } } };
  for (const [k, v] of Object.entries(pdb.spec.selector.matchLabels)) assert.equal(labels[k], v);
  for (const [k, v] of Object.entries(deployment.spec!.selector.matchLabels!)) assert.equal(labels[k], v);
});

test("the pods run as the image's non-root user 1000, the image of this version", () => {
  assert.equal(pod.spec!.securityContext?.runAsNonRoot, true);
  assert.equal(pod.spec!.securityContext?.runAsUser, 1000);
  assert.deepEqual(container.securityContext?.capabilities?.drop, ['ALL']);
  assert.equal(container.securityContext?.allowPrivilegeEscalation, false);
  assert.equal(container.image, `mar-tools:${version}`);
});

type Runtime = {
  metadata: { name: string; annotations: Record<string, string> };
  spec: {
    annotations: Record<string, string>;
    supportedModelFormats: Array<{ name: string; version?: string; autoSelect?: boolean; priority?: number }>;
    protocolVersions: string[];
    containers: Array<{ name: string; image: string; args: string[]; env: Array<{ name: string; value: string }> }>;
  };
};

test('the ClusterServingRuntime takes over pytorch InferenceServices as kserve-torchserve did', () => {
  const runtime = get<Runtime>(kserve, 'ClusterServingRuntime/mar-tools-torchserve');
  // KServe applies its TorchServe defaults (PROTOCOL_VERSION, the serviceEnvelope label) for this server type
  assert.equal(runtime.metadata.annotations['serving.kserve.io/server-type'], 'torchserve');
  const pytorch = runtime.spec.supportedModelFormats.find((f) => f.name === 'pytorch');
  assert.deepEqual(pytorch, { name: 'pytorch', version: '1', autoSelect: true, priority: 3 });
  assert.notEqual(pytorch.priority, 2, "kserve-torchserve's priority: KServe refuses two runtimes with one priority");
  assert.deepEqual(runtime.spec.protocolVersions, ['v1', 'v2', 'grpc-v2']);
  assert.deepEqual(runtime.spec.annotations, { 'prometheus.kserve.io/port': '8082', 'prometheus.kserve.io/path': '/metrics' });

  const [c] = runtime.spec.containers;
  assert.equal(c!.name, 'kserve-container', "KServe merges the InferenceService's predictor into this container");
  assert.equal(c!.image, `mar-tools:${version}`);
  assert.deepEqual(c!.env, [{ name: 'TS_SERVICE_ENVELOPE', value: '{{.Labels.serviceEnvelope}}' }]);
  // the same paths as kserve-torchserve's args, and only flags the entrypoint has
  assert.ok(c!.args.includes(`--model-store=${DEFAULT_MODEL_DIR}/model-store`));
  assert.ok(c!.args.includes(`--ts-config=${DEFAULT_MODEL_DIR}/config/config.properties`));
  const flags = new Set(buildEntrypointProgram().options.flatMap((o) => [o.long, o.short].filter(Boolean)));
  for (const arg of c!.args) assert.ok(flags.has(arg.split('=')[0]!), `${arg} is an entrypoint flag`);
});

test('the InferenceService example: modelFormat pytorch on a TorchServe model store, scraped through KServe', () => {
  const isvc = get<{
    metadata: { annotations: Record<string, string> };
    spec: { predictor: { model: { modelFormat: { name: string }; runtime: string; storageUri: string } } };
  }>(kserve, 'InferenceService/torchserve-mnist');
  assert.equal(isvc.spec.predictor.model.modelFormat.name, 'pytorch');
  assert.equal(isvc.spec.predictor.model.runtime, 'mar-tools-torchserve');
  assert.match(isvc.spec.predictor.model.storageUri, /^(gs|s3|pvc|https?):\/\//);
  assert.equal(isvc.metadata.annotations['serving.kserve.io/enable-prometheus-scraping'], 'true');
});
