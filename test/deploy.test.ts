// The deployment files, checked offline with the real tools (infra/install-deploy-tools.sh):
// `helm lint --strict` and `helm template` of infra/helm/alexnet with the default values
// and each values-*.yaml; every rendered object through infra/validate-manifests (strict
// Kubernetes API types, KEDA's CRD schemas and temporal scaler fields) together with the
// Dockerfiles (BuildKit's parser); every command a manifest or image runs, run against the
// CLI; and the properties the cluster relies on, asserted on what was rendered.
import test from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { CLI, ROOT } from './helpers';

const CHART = path.join(ROOT, 'infra', 'helm', 'alexnet');
const DOCKERFILES = ['Dockerfile', 'Dockerfile.gpu'].map((f) => path.join(ROOT, 'infra', 'docker', f));
const TOOLS = { helm: path.join(ROOT, '.cache', 'bin', 'helm'), validator: path.join(ROOT, '.cache', 'bin', 'validate-manifests'), keda: path.join(ROOT, '.cache', 'keda') };
const VALUES_FILES = fs.readdirSync(CHART).filter((f) => /^values-.+\.yaml$/.test(f)).sort();

interface Container { name: string; image: string; args?: string[]; env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  resources?: { limits?: Record<string, string | number> }; readinessProbe?: { httpGet?: { path: string } }; livenessProbe?: { httpGet?: { path: string } } }
interface PodSpec { containers: Container[]; terminationGracePeriodSeconds?: number; nodeSelector?: Record<string, string>; tolerations?: unknown[] }
interface Manifest {
  kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { template?: { metadata?: { annotations?: Record<string, string> }; spec: PodSpec }; minReplicaCount?: number; scaleTargetRef?: { name: string };
    triggers?: { type: string; metadata: Record<string, string>; authenticationRef?: { name: string } }[]; secretTargetRef?: { parameter: string; name: string; key: string }[] };
}
interface Report {
  kubernetesApi: string; keda: string; errors: string[];
  objects: { kind: string; name: string; checkedBy: string; manifest: Manifest }[];
  dockerfiles: { file: string; user: string; healthcheck: string[]; entrypoint: string[]; stages: { name: string; base: string; runs: string[]; envs: string[]; args: string[] }[] }[];
}

function run(file: string, args: string[], input?: string) {
  const r = spawnSync(file, args, { encoding: 'utf8', input, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

test.before(() => {
  for (const [name, p] of Object.entries(TOOLS)) {
    if (!fs.existsSync(p)) throw new Error(`${name} is not installed (no ${p}): run \`bash infra/install-deploy-tools.sh\` (or \`bash scripts/setup.sh\`)`);
  }
});

// Each values set: lint, render, validate; the report with every object.
const rendered = new Map<string, Report>();
function render(valuesFile?: string): Report {
  const key = valuesFile ?? 'values.yaml';
  const cached = rendered.get(key);
  if (cached) return cached;
  const valuesArgs = valuesFile ? ['-f', path.join(CHART, valuesFile)] : [];
  const lint = run(TOOLS.helm, ['lint', '--strict', CHART, ...valuesArgs]);
  if (lint.status !== 0 || /\[(WARNING|ERROR)\]/.test(lint.stdout)) throw new Error(`helm lint ${key}:\n${lint.stdout}${lint.stderr}`);
  const template = run(TOOLS.helm, ['template', 'alexnet', CHART, '--namespace', 'ml', ...valuesArgs]);
  if (template.status !== 0) throw new Error(`helm template ${key}: ${template.stderr}`);
  const validated = run(TOOLS.validator, ['--keda', TOOLS.keda, ...DOCKERFILES.flatMap((d) => ['--dockerfile', d])], template.stdout);
  if (validated.status !== 0) throw new Error(`validate-manifests ${key}:\n${validated.stderr}`);
  const report = JSON.parse(validated.stdout) as Report;
  rendered.set(key, report);
  return report;
}

const manifests = (r: Report, kind: string) => r.objects.filter((o) => o.kind === kind).map((o) => o.manifest);
const pool = (r: Report, role: string, build?: string) => manifests(r, 'Deployment').filter((d) => d.metadata.labels?.['alexnet.dev/pool'] === role && (build === undefined || d.metadata.labels?.['alexnet.dev/build-id'] === build));
const scalerOf = (r: Report, deployment: Manifest) => manifests(r, 'ScaledObject').find((s) => s.spec.scaleTargetRef?.name === deployment.metadata.name);
const containers = (r: Report) => [...manifests(r, 'Deployment'), ...manifests(r, 'Job')].flatMap((m) => m.spec.template!.spec.containers);

for (const valuesFile of [undefined, ...VALUES_FILES]) {
  test(`deploy: helm lint and template are clean with ${valuesFile ?? 'the default values'}, and every object validates strictly`, (t) => {
    const report = render(valuesFile);
    t.deepEqual(report.errors, []);
    t.true(report.objects.length > 0);
    for (const o of report.objects) t.truthy(o.checkedBy, `${o.kind} ${o.name} was checked against a type or schema`);
    const kinds = new Map<string, number>();
    report.objects.forEach((o) => kinds.set(o.kind, (kinds.get(o.kind) ?? 0) + 1));
    t.log(`${report.objects.length} objects (${[...kinds].map(([k, n]) => `${n} ${k}`).join(', ')}), valid against k8s.io/api ${report.kubernetesApi} and ${report.keda}`);
  });
}

test('deploy: the validator refuses an unknown field, a wrong type and an unknown temporal scaler setting, naming the object', (t) => {
  const template = run(TOOLS.helm, ['template', 'alexnet', CHART, '-f', path.join(CHART, 'values-gpu.yaml')]).stdout;
  const broken = template
    .replace(/terminationGracePeriodSeconds: (\d+)/, 'terminationGracePeriodSeconds: "$1"')
    .replace(/minReplicaCount: 0/, 'minReplicaCount: 0\n  minReplicas: 0')
    .replace(/taskQueue: "alexnet-gpu"/, 'taskQueue: "alexnet-gpu"\n        taskQueues: "alexnet-gpu"');
  const r = run(TOOLS.validator, ['--keda', TOOLS.keda], broken);
  t.is(r.status, 1);
  t.regex(r.stderr, /Deployment alexnet-\S+ \(apps\/v1\): .*terminationGracePeriodSeconds of type int64/);
  t.regex(r.stderr, /ScaledObject \S+ \(keda\.sh\/v1alpha1\): spec: unknown field "minReplicas"/);
  t.regex(r.stderr, /metadata "taskQueues" is not a field of KEDA's temporal scaler/);
  const secret = run(TOOLS.validator, ['--keda', TOOLS.keda], 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: leaked\nstringData:\n  api-key: abc\n');
  t.is(secret.status, 1);
  t.regex(secret.stderr, /Secret leaked \(v1\): the chart renders no Secrets/);
});

test('deploy: the GPU pool scales from zero on the alexnet-gpu backlog, with GPU limits, its node selector and tolerations, and a grace period that covers a checkpoint', (t) => {
  for (const valuesFile of [undefined, 'values-gpu.yaml']) {
    const report = render(valuesFile);
    const [gpu] = pool(report, 'gpu');
    t.truthy(gpu, 'a GPU worker Deployment');
    const scaler = scalerOf(report, gpu)!;
    t.is(scaler.spec.minReplicaCount, 0);
    const trigger = scaler.spec.triggers![0];
    t.is(trigger.type, 'temporal');
    t.is(trigger.metadata.taskQueue, 'alexnet-gpu');
    const podSpec = gpu.spec.template!.spec;
    t.true(podSpec.terminationGracePeriodSeconds! >= 60, `grace period ${podSpec.terminationGracePeriodSeconds} s`);
    t.deepEqual(podSpec.containers[0].args, ['worker', '--task-queue', 'alexnet-gpu', '--gpu']);
    t.truthy(podSpec.containers[0].resources?.limits?.['nvidia.com/gpu']);
    t.truthy(podSpec.tolerations?.length);
    const [batch] = pool(report, 'batch');
    t.is(scalerOf(report, batch)!.spec.minReplicaCount, 0, 'the batch-inference pool scales from zero too');
  }
  const gpuValues = render('values-gpu.yaml');
  const gpuSpec = pool(gpuValues, 'gpu')[0].spec.template!.spec;
  t.is(gpuSpec.containers[0].resources!.limits!['nvidia.com/gpu'], 2);
  t.deepEqual(gpuSpec.nodeSelector, { 'node.kubernetes.io/instance-type': 'p4d.24xlarge' });
  t.is(render().objects.find((o) => o.kind === 'Deployment' && o.manifest.metadata.labels?.['alexnet.dev/pool'] === 'gpu')!.manifest.spec.template!.spec.terminationGracePeriodSeconds, 120, 'the default grace period');
});

test('deploy: serve has readiness on /v2/health/ready, liveness on /v2/health/live, a Service, an HPA, a PDB and its /metrics annotated for Prometheus', (t) => {
  const report = render('values-gpu.yaml');
  const serve = manifests(report, 'Deployment').find((d) => d.metadata.name.endsWith('-serve'))!;
  const c = serve.spec.template!.spec.containers[0];
  t.is(c.readinessProbe?.httpGet?.path, '/v2/health/ready');
  t.is(c.livenessProbe?.httpGet?.path, '/v2/health/live');
  const annotations = serve.spec.template!.metadata!.annotations!;
  t.is(annotations['prometheus.io/scrape'], 'true');
  t.is(annotations['prometheus.io/path'], '/metrics');
  t.truthy(manifests(report, 'Service').find((s) => s.metadata.name === serve.metadata.name));
  t.truthy(manifests(report, 'HorizontalPodAutoscaler').find((h) => h.metadata.name === serve.metadata.name));
  t.truthy(manifests(report, 'PodDisruptionBudget').find((p) => p.metadata.name === serve.metadata.name));
});

test('deploy: secrets are referenced, never inlined: no Secret objects, every credential from a secretKeyRef or a TriggerAuthentication', (t) => {
  const secretNames = ['temporal-cloud', 'temporal-mtls', 'alexnet-s3'];
  for (const valuesFile of [undefined, ...VALUES_FILES]) {
    const report = render(valuesFile);
    t.is(manifests(report, 'Secret').length, 0);
    for (const c of containers(report)) {
      for (const e of c.env ?? []) {
        if (/KEY|SECRET|TOKEN|PASSWORD/.test(e.name) && !/^TEMPORAL_TLS_(CERT|KEY|CA)$/.test(e.name)) {
          t.is(e.value, undefined, `${e.name} in ${c.name} (${valuesFile ?? 'values.yaml'}) has no literal value`);
          t.true(secretNames.includes(e.valueFrom?.secretKeyRef?.name ?? ''), `${e.name} comes from a Secret`);
        }
      }
    }
    for (const auth of manifests(report, 'TriggerAuthentication')) {
      for (const ref of auth.spec.secretTargetRef ?? []) t.true(secretNames.includes(ref.name), `KEDA's ${ref.parameter} comes from a Secret`);
    }
  }
  const cloud = render('values-gpu.yaml');
  const env = containers(cloud)[0].env!;
  t.deepEqual(env.find((e) => e.name === 'TEMPORAL_API_KEY')?.valueFrom, { secretKeyRef: { name: 'temporal-cloud', key: 'api-key' } });
  t.is(scalerOf(cloud, pool(cloud, 'gpu')[0])!.spec.triggers![0].authenticationRef?.name, manifests(cloud, 'TriggerAuthentication')[0].metadata.name);
});

test('deploy: every command a manifest or image runs exists in the CLI and takes the flags it is given', (t) => {
  const commands = new Map<string, string[]>();
  for (const valuesFile of [undefined, ...VALUES_FILES]) {
    for (const c of containers(render(valuesFile))) commands.set(JSON.stringify(c.args), c.args!);
  }
  for (const { healthcheck, entrypoint } of render().dockerfiles) {
    t.deepEqual(entrypoint, ['node', '/app/dist/scripts/alexnet.js']);
    t.is(healthcheck[0], 'CMD');
    t.is(healthcheck[2], '/app/dist/scripts/alexnet.js');
    const r = spawnSync(process.execPath, [CLI, ...healthcheck.slice(3)], { encoding: 'utf8' });
    t.is(r.status, 0, `the images' health check, alexnet ${healthcheck.slice(3).join(' ')}: ${r.stderr}`);
  }
  t.true(commands.size >= 4, 'worker (three pools), serve and schedule-eval');
  for (const args of commands.values()) {
    // --help after the manifest's own arguments: the command's parser refuses any flag it
    // does not know (exit 2) before it answers the help (exit 0).
    const r = spawnSync(process.execPath, [CLI, ...args, '--help'], { encoding: 'utf8' });
    t.is(r.status, 0, `alexnet ${args.join(' ')}: ${r.stderr}`);
    t.true(r.stdout.startsWith(`usage: alexnet ${args[0]}`), `alexnet ${args[0]} answers its own help`);
  }
});

test('deploy: the images are multi-stage builds with the scripts CI runs, a production install, a non-root user, a health check and no secrets', (t) => {
  const [cpu, gpu] = render().dockerfiles;
  for (const d of [cpu, gpu]) {
    const runs = d.stages.flatMap((s) => s.runs).join('\n');
    t.true(d.stages.length >= 3, `${d.file}: builder, production install, runtime`);
    t.regex(runs, /bash native\/build\.sh/);
    t.regex(runs, /npx tsc -p tsconfig\.json/);
    t.regex(runs, /npm ci --omit=dev/);
    t.notRegex(d.user, /^(root|0)(:|$)/);
    t.not(d.user, '');
    t.true(d.healthcheck.length > 0);
    for (const s of d.stages) for (const name of [...s.envs, ...s.args]) t.notRegex(name, /SECRET|PASSWORD|TOKEN|API_KEY|ACCESS_KEY/, `${d.file}: no credential in ENV or ARG`);
    for (const script of runs.match(/bash (\S+\.sh)/g) ?? []) t.true(fs.existsSync(path.join(ROOT, script.slice(5))), `${script} exists`);
  }
  t.regex(gpu.stages.flatMap((s) => s.runs).join('\n'), /bash scripts\/install-cuda\.sh/);
  t.regex(gpu.stages.at(-1)!.base, /^nvidia\/cuda:[\d.]+-runtime-/);
});

test('deploy: workers declare the Worker Deployment and the image tag as build id; an upgrade keeps the previous build\'s pools, scaled on their own version', (t) => {
  const report = render('values-upgrade.yaml');
  for (const role of ['cpu', 'gpu', 'batch']) {
    const [current] = pool(report, role, '0.3.0');
    const [previous] = pool(report, role, '0.2.0');
    t.truthy(current && previous, `${role} pools of both builds`);
    for (const [d, build] of [[current, '0.3.0'], [previous, '0.2.0']] as const) {
      const c = d.spec.template!.spec.containers[0];
      t.true(c.image.endsWith(`:${build}`));
      t.is(c.env!.find((e) => e.name === 'ALEXNET_BUILD_ID')?.value, build);
      t.is(c.env!.find((e) => e.name === 'ALEXNET_WORKER_DEPLOYMENT')?.value, 'alexnet');
      t.is(scalerOf(report, d)!.spec.triggers![0].metadata.workerDeploymentBuildId, build);
    }
    t.is(scalerOf(report, previous)!.spec.minReplicaCount, 0, `the previous build's ${role} pool goes to zero once drained`);
  }
});
