// Worker settings shared by `alexnet worker` and the tests' in-process workers.
import type { WorkerOptions } from '@temporalio/worker';

export const WORKER_TUNING = {
  // Heartbeats (and with them the delivery of a cancellation: pause, stop) reach the
  // server at least this often, so a pause or stop lands within a second or two rather
  // than after the SDK's default throttle of up to a minute.
  maxHeartbeatThrottleInterval: '1 second',
  // On SIGTERM a running epoch gets this long, then is cancelled: it checkpoints at the
  // next batch boundary and the next attempt resumes there.
  shutdownGraceTime: '30 seconds',
  // A workflow task bound for a worker that died (SIGKILL, preemption) waits this long on
  // that worker's sticky queue before any worker takes it (the SDK's default: 10 s, paid
  // on every preemption). A busy live worker only loses its cached copy of the workflow.
  stickyQueueScheduleToStartTimeout: '2 seconds',
} as const;

// Worker Versioning: a worker that names a Worker Deployment and a build id serves only
// the runs of that version (docs/deploy.md#upgrades). The environment variables are what
// the Helm chart sets from the image tag; the flags of `alexnet worker` win over them.
export const WORKER_DEPLOYMENT_ENV = 'ALEXNET_WORKER_DEPLOYMENT';
export const BUILD_ID_ENV = 'ALEXNET_BUILD_ID';

export interface WorkerVersion { deploymentName: string; buildId: string }

// Temporal's limit on both names; whitespace would make a version nobody can type into
// `temporal worker deployment set-current-version`.
const MAX_VERSION_NAME = 255;

function versionPart(what: string, source: string, value: string): string {
  if (value === '' || value.length > MAX_VERSION_NAME || /[\s\p{Cc}]/u.test(value)) {
    throw new Error(`Expected a ${what} of 1 to ${MAX_VERSION_NAME} characters without whitespace for ${source} but received ${JSON.stringify(value)}`);
  }
  return value;
}

// The worker's version from its flags, else the environment; undefined when neither names
// one (an unversioned worker, as on one machine). One without the other is refused: a
// half-declared version would silently run unversioned.
export function workerVersion(flags: { deployment?: string; 'build-id'?: string }, env: NodeJS.ProcessEnv = process.env): WorkerVersion | undefined {
  const deployment = flags.deployment ?? env[WORKER_DEPLOYMENT_ENV];
  const buildId = flags['build-id'] ?? env[BUILD_ID_ENV];
  if (deployment === undefined && buildId === undefined) return undefined;
  const deploymentSource = flags.deployment !== undefined ? '--deployment' : WORKER_DEPLOYMENT_ENV;
  const buildSource = flags['build-id'] !== undefined ? '--build-id' : BUILD_ID_ENV;
  if (deployment === undefined) throw new Error(`a build id (${buildSource}) needs a Worker Deployment name too: --deployment NAME or ${WORKER_DEPLOYMENT_ENV}`);
  if (buildId === undefined) throw new Error(`a Worker Deployment (${deploymentSource}) needs a build id too: --build-id ID or ${BUILD_ID_ENV}`);
  return { deploymentName: versionPart('Worker Deployment name', deploymentSource, deployment), buildId: versionPart('build id', buildSource, buildId) };
}

// The worker options of a version. Each workflow declares its own behaviour
// (setWorkflowOptions in workflows/); PINNED is the default for any that would not.
export function versioningOptions(version: WorkerVersion | undefined): Pick<WorkerOptions, 'workerDeploymentOptions'> {
  return version ? { workerDeploymentOptions: { version, useWorkerVersioning: true, defaultVersioningBehavior: 'PINNED' } } : {};
}
