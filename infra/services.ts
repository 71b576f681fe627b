// Starts and stops the real local services as child processes: the Temporal dev server
// (`temporal server start-dev`, state in one SQLite file) and MinIO (S3 on a local
// folder). Used by `alexnet up`/`down` and by tests. Binaries come from
// infra/install-services.sh (symlinked into .cache/bin).
import { ChildProcess, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { Connection } from '@temporalio/client';

// The repository this file was built in: compiled to dist/infra/, so two levels up. infra/
// imports nothing of ours outside common/ (eslint.config.mjs), so it resolves this itself.
const REPO_ROOT = path.resolve(__dirname, '..', '..');

const INSTALL_HINT = 'run `bash infra/install-services.sh` (or `bash scripts/setup.sh`)';
const GRACE_MS = 10_000;

export type ServiceName = 'temporal' | 'minio';

export interface Service {
  pid: number;
  logFile: string;
  /** SIGTERM, then SIGKILL after a grace period; resolves once the process is gone. */
  stop(): Promise<void>;
}
export interface TemporalService extends Service { address: string; uiUrl: string; namespace: string; dbFile: string }
export interface MinioService extends Service {
  endpoint: string; consoleUrl: string; region: string;
  accessKeyId: string; secretAccessKey: string; credentialsFile: string;
}
interface Common { dir: string; detached?: boolean; timeoutMs?: number }
export interface TemporalOptions extends Common {
  port?: number; uiPort?: number; namespace?: string;
  // Server dynamic config, e.g. {'limit.historyCount.suggestContinueAsNew': 40} to test continueAsNew.
  dynamicConfig?: Record<string, string | number | boolean>;
}
export interface MinioOptions extends Common { port?: number; consolePort?: number }

export function binaryPath(name: ServiceName): string {
  const bin = path.join(REPO_ROOT, '.cache', 'bin', name);
  try {
    fs.accessSync(bin, fs.constants.X_OK); // follows the symlink into the machine cache
  } catch {
    throw new Error(`${name} is not installed (no executable ${bin}): ${INSTALL_HINT}`);
  }
  return bin;
}

export async function startTemporal(opts: TemporalOptions): Promise<TemporalService> {
  const free = await freePorts(2);
  const [port, uiPort] = [opts.port ?? free[0], opts.uiPort ?? free[1]];
  const namespace = opts.namespace ?? 'default';
  await assertPortsFree('temporal', [port, uiPort]);
  const dbFile = path.join(path.resolve(opts.dir), 'temporal.sqlite');
  const address = `127.0.0.1:${port}`;
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', `${port}`, '--ui-port', `${uiPort}`,
    '--db-filename', dbFile, '--namespace', namespace, '--log-level', 'warn',
    ...Object.entries(opts.dynamicConfig ?? {}).flatMap(([k, v]) => ['--dynamic-config-value', `${k}=${JSON.stringify(v)}`])];
  const proc = launch('temporal', args, {}, opts);
  await proc.waitReady(async () => {
    if (!await tcpOpen(port)) return false;
    // Ready once the frontend answers and our namespace is registered.
    const connection = await Connection.connect({ address, connectTimeout: '2s' });
    try {
      await connection.workflowService.describeNamespace({ namespace });
      return true;
    } finally {
      await connection.close();
    }
  }, opts.timeoutMs ?? 60_000);
  return { pid: proc.pid, logFile: proc.logFile, stop: proc.stop, address, uiUrl: `http://127.0.0.1:${uiPort}`, namespace, dbFile };
}

export async function startMinio(opts: MinioOptions): Promise<MinioService> {
  const free = await freePorts(2);
  const [port, consolePort] = [opts.port ?? free[0], opts.consolePort ?? free[1]];
  await assertPortsFree('minio', [port, consolePort]);
  const dir = path.resolve(opts.dir);
  const { file: credentialsFile, accessKeyId, secretAccessKey } = credentials(dir);
  const endpoint = `http://127.0.0.1:${port}`;
  // --quiet: the startup banner would print the root password into the log.
  const args = ['server', path.join(dir, 'data'), '--address', `127.0.0.1:${port}`,
    '--console-address', `127.0.0.1:${consolePort}`, '--quiet'];
  const env = { MINIO_ROOT_USER: accessKeyId, MINIO_ROOT_PASSWORD: secretAccessKey, MINIO_UPDATE: 'off' };
  const proc = launch('minio', args, env, opts);
  await proc.waitReady(async () => await httpOk(`${endpoint}/minio/health/live`) && httpOk(`${endpoint}/minio/health/ready`),
    opts.timeoutMs ?? 30_000);
  const service = { pid: proc.pid, logFile: proc.logFile, stop: proc.stop, endpoint, consoleUrl: `http://127.0.0.1:${consolePort}`,
    region: 'us-east-1', accessKeyId, credentialsFile } as MinioService;
  // Not enumerable, so logging or JSON-encoding the service object does not show it.
  Object.defineProperty(service, 'secretAccessKey', { value: secretAccessKey, enumerable: false });
  return service;
}

// The AWS environment of a client of this MinIO, as `alexnet up` has a user export it: its
// root keys, region and endpoint (path-style addressing follows from the endpoint), and
// undefined for what would override those (a profile, which the SDK's chain prefers to
// keys in the environment; a session token; an S3-only endpoint; a path-style setting).
// For a child: spawn(..., { env: { ...process.env, ...minioAwsEnv(m) } }) (spawn leaves
// out undefined values); for this process: useMinioCredentials(m).
export function minioAwsEnv(m: MinioService): Record<string, string | undefined> {
  return {
    AWS_ACCESS_KEY_ID: m.accessKeyId, AWS_SECRET_ACCESS_KEY: m.secretAccessKey, AWS_REGION: m.region, AWS_ENDPOINT_URL: m.endpoint,
    AWS_PROFILE: undefined, AWS_SESSION_TOKEN: undefined, AWS_ENDPOINT_URL_S3: undefined, ALEXNET_S3_FORCE_PATH_STYLE: undefined,
  };
}

// Applies minioAwsEnv(m) to this process's environment (children started later inherit it).
export function useMinioCredentials(m: MinioService): void {
  for (const [name, value] of Object.entries(minioAwsEnv(m))) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
}

// The root credentials live in <dir>/minio.env (mode 0600, sourceable by a shell), made
// once per dir: MinIO's stored config stays readable when the same dir restarts.
function credentials(dir: string): { file: string; accessKeyId: string; secretAccessKey: string } {
  const file = path.join(dir, 'minio.env');
  fs.mkdirSync(dir, { recursive: true });
  if (!fs.existsSync(file)) {
    const id = `alexnet-${crypto.randomBytes(4).toString('hex')}`;
    const secret = crypto.randomBytes(30).toString('base64url');
    fs.writeFileSync(file, `AWS_ACCESS_KEY_ID=${id}\nAWS_SECRET_ACCESS_KEY=${secret}\n`, { mode: 0o600 });
  }
  return { file, ...readMinioCredentials(file) };
}

/** The root credentials of a MinIO started here (its minio.env), e.g. one `alexnet up` left running. */
export function readMinioCredentials(file: string): { accessKeyId: string; secretAccessKey: string } {
  const vars = Object.fromEntries(fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('='))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  if (!vars.AWS_ACCESS_KEY_ID || !vars.AWS_SECRET_ACCESS_KEY) throw new Error(`${file}: no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; delete it to make new ones`);
  return { accessKeyId: vars.AWS_ACCESS_KEY_ID, secretAccessKey: vars.AWS_SECRET_ACCESS_KEY };
}

// Children that die with this process. `alexnet up` passes detached instead.
const attached = new Set<ChildProcess>();
process.on('exit', () => attached.forEach((c) => c.kill('SIGTERM')));
// setpriv --pdeathsig also covers a parent killed by a signal, where 'exit' never runs.
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));

function launch(name: ServiceName, args: string[], env: Record<string, string>, opts: Common) {
  const bin = binaryPath(name);
  const dir = path.resolve(opts.dir);
  fs.mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, `${name}.log`);
  fs.appendFileSync(logFile, `--- ${new Date().toISOString()} starting ${name} ${args.join(' ')}\n`);
  const logStart = fs.statSync(logFile).size; // an error shows this run's lines only
  const fd = fs.openSync(logFile, 'a');
  const [cmd, argv] = !opts.detached && SETPRIV ? [SETPRIV, ['--pdeathsig', 'TERM', '--', bin, ...args]] : [bin, args];
  let child: ChildProcess;
  try {
    child = spawn(cmd, argv, { stdio: ['ignore', fd, fd], env: { ...process.env, ...env }, detached: !!opts.detached });
  } finally {
    fs.closeSync(fd); // the child has its own copy
  }
  if (opts.detached) child.unref(); else attached.add(child);
  let spawnError: Error | undefined;
  child.on('error', (e) => { spawnError = e; });
  child.on('exit', () => attached.delete(child));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const gone = () => child.exitCode !== null || child.signalCode !== null || spawnError !== undefined;
  const stop = async (): Promise<void> => {
    if (gone()) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), GRACE_MS);
    await exited;
    clearTimeout(timer);
  };
  const fail = async (why: string): Promise<never> => {
    await stop();
    const log = fs.readFileSync(logFile, 'utf8').slice(logStart);
    throw new Error(`${name} did not start: ${why}.\nLast lines of ${logFile}:\n${log.split('\n').slice(-25).join('\n')}\n` +
      `If it is missing or broken, ${INSTALL_HINT}; if a port is taken, stop what holds it or choose other ports.`);
  };
  const waitReady = async (ready: () => Promise<boolean>, timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let lastError = '';
    while (Date.now() < deadline) {
      if (gone()) return fail(spawnError ? spawnError.message : `exited with ${child.exitCode ?? child.signalCode}`);
      try {
        if (await ready()) return;
      } catch (e) {
        lastError = (e as Error).message;
      }
      await sleep(200);
    }
    return fail(`not ready after ${timeoutMs / 1000} s${lastError ? ` (last error: ${lastError})` : ''}`);
  };
  return { pid: child.pid ?? -1, logFile, stop, waitReady };
}

/** Whether pid is a live (not zombie) process running our `name` binary: guards against pid reuse. */
export function isServiceProcess(pid: number, name: ServiceName): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    const argv0 = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
    return path.basename(argv0).startsWith(name);
  } catch {
    return false;
  }
}

/** Stops a service started elsewhere (by `alexnet up`): SIGTERM, then SIGKILL after the grace period. */
export async function stopPid(pid: number, name: ServiceName, graceMs = GRACE_MS): Promise<boolean> {
  if (!isServiceProcess(pid, name)) return false;
  // ESRCH is ignored: the process may end between the check and the signal.
  const signal = (sig: NodeJS.Signals) => { try { process.kill(pid, sig); } catch { /* gone */ } };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  let killed = false;
  while (isServiceProcess(pid, name)) {
    if (!killed && Date.now() > deadline) { signal('SIGKILL'); killed = true; }
    await sleep(100);
  }
  return true;
}

/** n distinct free ports on 127.0.0.1 (all held open at once, so none repeats). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  })));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

async function assertPortsFree(name: ServiceName, ports: number[]): Promise<void> {
  for (const port of ports) {
    const free = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (!free) throw new Error(`cannot start ${name}: port ${port} on 127.0.0.1 is already in use (another copy running? \`alexnet down\`, or choose other ports)`);
  }
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return res.ok;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
