// alexnet bench --preprocess: our sharp preprocessing (one worker process, and pinned
// single processes) against Pillow on the same ImageNet-like JPEGs.
import { execFile, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { DECODE_CONCURRENCY, decodeThreads } from '../../activities/decode-image';
import { lastJsonLine, PYTHON, REPO_ROOT } from '../python';
import { DIST_DIR } from '../paths';
import { round } from './numbers';
import { photoLikeJpegs } from './jpegs';


// ImageNet-like test images (500x375) written into dir.
async function makeJpegs(dir: string, n: number): Promise<string[]> {
  return Promise.all((await photoLikeJpegs(n, 500, 375)).map((jpeg, i) => {
    const file = path.join(dir, `img${String(i).padStart(4, '0')}.jpg`);
    fs.writeFileSync(file, jpeg);
    return file;
  }));
}

interface PreprocessRun { images: number; seconds: number; cpu_seconds: number }

// The CPUs this process may run on (its affinity list, e.g. "0-3,8"), or undefined where
// taskset is missing (not Linux): then processes are not pinned and the report says so.
function allowedCpus(): number[] | undefined {
  const r = spawnSync('taskset', ['-pc', String(process.pid)], { encoding: 'utf8' });
  const list = r.status === 0 ? /:\s*([\d,-]+)\s*$/.exec(r.stdout)?.[1] : undefined;
  if (!list) return undefined;
  return list.split(',').flatMap((part) => {
    const [a, b = a] = part.split('-').map(Number);
    return Array.from({ length: b - a + 1 }, (_, i) => a + i);
  });
}

// Preprocessing of ImageNet-sized JPEGs, ours beside Pillow in the same run. "Per core"
// means what it says: each process is pinned to its own core (taskset), so a process's
// threads cannot spread over idle cores, and thread migration on an idle machine does not
// count against either side. Rounds alternate the contenders and each keeps its best, so
// a noisy neighbour slows both alike. The last row is ours as a worker runs it: one
// process, unpinned, all cores, the threadpool sized by the worker's own rule.
export async function benchPreprocess(images: number, size: number, rounds: number, json: boolean): Promise<void> {
  const log = (s: string) => (json ? process.stderr : process.stdout).write(s + '\n');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alexnet-preprocess-'));
  const files = await makeJpegs(dir, images);
  const cpus = allowedCpus();
  const cores = Math.min(2, cpus?.length ?? os.availableParallelism());
  log(`bench --preprocess: ${images} JPEGs of 500x375 -> ${size}x${size} RGB (shorter side to ${size}, centre crop); ` +
    (cpus ? `each process pinned to one core (cpus ${cpus.slice(0, cores).join(', ')})` : 'taskset missing: processes NOT pinned'));
  const ours = path.join(DIST_DIR, 'scripts', 'bench', 'preprocess-worker.js');
  const pillowScript = path.join(REPO_ROOT, 'scripts', 'pillow_preprocess_bench.py');
  const pythonEnv = { ...process.env, PYTHONPATH: path.join(REPO_ROOT, '.cache', 'pylib') };
  type Command = [string, string[], NodeJS.ProcessEnv];
  const pin = (p: number, [exe, args, env]: Command): Command => (cpus ? ['taskset', ['-c', String(cpus[p]), exe, ...args], env] : [exe, args, env]);
  const part = <T>(v: T[], p: number, n: number) => v.filter((_, i) => i % n === p);
  // n processes at once, each on every n-th image; throughput = images / the slowest.
  const runProcesses = async (n: number, command: (p: number) => Command): Promise<PreprocessRun> => {
    const runs = await Promise.all(Array.from({ length: n }, (_, p) => new Promise<PreprocessRun>((resolve, reject) => {
      const [exe, args, env] = command(p);
      execFile(exe, args, { env }, (err, stdout, stderr) => (err ? reject(new Error(`${exe} ${args.slice(0, 3).join(' ')} failed: ${stderr}`)) : resolve(lastJsonLine(stdout))));
    })));
    return { images: runs.reduce((a, r) => a + r.images, 0), seconds: Math.max(...runs.map((r) => r.seconds)), cpu_seconds: runs.reduce((a, r) => a + r.cpu_seconds, 0) };
  };
  // One libuv thread and one libvips thread per pinned process: exactly one core's worth.
  const oursOn = (kernel: string, n: number) => (p: number) => pin(p, [process.execPath, [ours, String(size), '3', kernel, '2', ...part(files, p, n)], { ...process.env, UV_THREADPOOL_SIZE: '1' }]);
  const pillowOn = (resample: string, n: number) => (p: number) => pin(p, [PYTHON, [pillowScript, dir, '--size', String(size), '--repeat', '3', '--resample', resample, '--part', `${p}/${n}`], pythonEnv]);
  const oursWorker = (): Command => [process.execPath, [ours, String(size), '3', 'lanczos3', String(DECODE_CONCURRENCY), ...files], { ...process.env, UV_THREADPOOL_SIZE: String(decodeThreads()) }];
  // Each of our kernels beside Pillow's filter of the same family: lanczos3 (our default)
  // with LANCZOS, linear with BILINEAR (what torchvision's Resize does).
  const pairs = [['lanczos3', 'lanczos'], ['linear', 'bilinear']] as const;
  const processCounts = [1, cores].filter((n, i, a) => a.indexOf(n) === i);
  const contenders: [string, number, (p: number) => Command][] = [];
  for (const n of processCounts) {
    for (const [kernel, resample] of pairs) contenders.push([`ours_${kernel}_${n}`, n, oursOn(kernel, n)], [`pillow_${resample}_${n}`, n, pillowOn(resample, n)]);
  }
  contenders.push(['ours_worker', 1, oursWorker]);
  const best: Record<string, PreprocessRun> = {};
  for (let round = 0; round < rounds; round++) {
    for (const [name, n, command] of contenders) {
      const r = await runProcesses(n, command);
      if (!best[name] || r.seconds < best[name].seconds) best[name] = r;
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  const imgS = (name: string) => best[name].images / best[name].seconds;
  const cpuImgS = (name: string) => best[name].images / best[name].cpu_seconds;
  for (const n of processCounts) {
    const per = n === 1 ? '1 process on 1 core' : `${n} processes on ${n} cores`;
    log(per + ': ' + pairs.map(([kernel, resample]) => `ours ${kernel} ${imgS(`ours_${kernel}_${n}`).toFixed(1)} img/s vs pillow ${resample} ${imgS(`pillow_${resample}_${n}`).toFixed(1)} (x${(imgS(`ours_${kernel}_${n}`) / imgS(`pillow_${resample}_${n}`)).toFixed(2)})`).join('; '));
  }
  if (cores > 1) {
    log(`scaling 1 -> ${cores} processes: ` + pairs.map(([kernel, resample]) => `ours ${kernel} x${(imgS(`ours_${kernel}_${cores}`) / imgS(`ours_${kernel}_1`)).toFixed(2)}, pillow ${resample} x${(imgS(`pillow_${resample}_${cores}`) / imgS(`pillow_${resample}_1`)).toFixed(2)}`).join('; '));
  }
  log(`one worker process, unpinned, ${os.availableParallelism()} cores, ${decodeThreads()} decode threads, ${DECODE_CONCURRENCY} images in flight: ours lanczos3 ${imgS('ours_worker').toFixed(1)} img/s (${cpuImgS('ours_worker').toFixed(1)} per CPU-second; pinned single processes: ${cpuImgS('ours_lanczos3_1').toFixed(1)})`);
  if (json) {
    console.log(JSON.stringify({
      backend: 'sharp', images, size, pinned: !!cpus, cores,
      ...Object.fromEntries(Object.keys(best).map((k) => [`${k}_img_s`, round(imgS(k))])),
      ...Object.fromEntries(Object.keys(best).map((k) => [`${k}_img_per_cpu_s`, round(cpuImgS(k))])),
    }));
  }
}
