// alexnet bench --checkpoint: checkpoint save and load through our store on MinIO against
// raw PutObject/GetObject of the same bytes.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { Network } from '../../native/index';
import { resolveModel } from '../commands/args';
import { round } from './numbers';


// Checkpoint throughput on MinIO: our saveCheckpoint/loadNewestCheckpoint (sha256 and
// put from the network's memory, then latest.json; latest.json, list, then the object
// streamed into a new network, its sha256 checked on the way) against a raw PutObject
// and GetObject of the same bytes (the SDK's defaults: CRC32 on both).
export async function benchCheckpoint(model: string, rounds: number, stages: boolean, json: boolean): Promise<void> {
  const { startMinio, useMinioCredentials } = await import('../../infra/services');
  const { S3Client, PutObjectCommand, GetObjectCommand } = await import('@aws-sdk/client-s3');
  const { ensureBucket } = await import('../../activities/store/bucket');
  const { openStore } = await import('../../activities/store');
  const { saveCheckpoint, loadNewestCheckpoint } = await import('../../activities/checkpoint');
  const { encodeState, encodeStateParts, readStateNetwork } = await import('../../native/state');
  const { decodeSafetensors } = await import('../../native/safetensors');
  const { createHash } = await import('crypto');
  const log = (s: string) => (json ? process.stderr : process.stdout).write(s + '\n');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alexnet-ckpt-bench-'));
  const minio = await startMinio({ dir });
  try {
    useMinioCredentials(minio);
    const s3 = new S3Client({ endpoint: minio.endpoint, region: minio.region, forcePathStyle: true, credentials: { accessKeyId: minio.accessKeyId, secretAccessKey: minio.secretAccessKey } });
    await ensureBucket('s3://bench', { client: s3 });
    const net = new Network(resolveModel(model), { seed: 1 });
    const bytes = encodeState(net);
    const mb = bytes.length / 1e6;
    const store = openStore('s3://bench/ours');
    // Ours and raw alternate, round after round, and each keeps its best time: a load that
    // drifts during the run (other processes on the machine) weighs on both alike.
    const best: Record<string, number> = {};
    const time = async (name: string, f: () => Promise<unknown>) => {
      const t0 = process.hrtime.bigint();
      await f();
      best[name] = Math.min(best[name] ?? Infinity, Number(process.hrtime.bigint() - t0) / 1e9);
    };
    const drain = async (s: AsyncIterable<unknown>) => { for await (const chunk of s) void chunk; };  // the transfer alone
    const { dataStart } = decodeSafetensors(bytes);
    let batch = 0;
    for (let i = 0; i < rounds; i++) {
      await time('ours_save', () => saveCheckpoint(store, 'bench', net, { epoch: 0, batch: batch++ }, { attempt: 1, lr: 0.01 }));
      await time('raw_put', () => s3.send(new PutObjectCommand({ Bucket: 'bench', Key: 'raw.bin', Body: bytes })));
      await time('ours_load', () => loadNewestCheckpoint(store, 'bench'));
      await time('raw_get', async () => (await s3.send(new GetObjectCommand({ Bucket: 'bench', Key: 'raw.bin' }))).Body!.transformToByteArray());
      if (!stages) continue;
      // Each step of ours on its own (saveCheckpoint and loadNewestCheckpoint do them in turn).
      let parts: Buffer[] = [];
      await time('save_encode_sha256', async () => { parts = encodeStateParts(net); });
      await time('save_put', () => store.put('stages.safetensors', parts));
      await time('load_get_transfer', async () => drain(await store.getStream('stages.safetensors', { verify: false })));
      await time('load_new_network_no_init', async () => new Network(net.config, { init: false }));
      await time('load_new_network_random_init', async () => new Network(net.config));
      await time('load_sha256', async () => createHash('sha256').update(bytes.subarray(dataStart)).digest());
      await time('load_read_state_network', async () => readStateNetwork(await store.getStream('stages.safetensors', { verify: false }), 'stages'));
    }
    s3.destroy();
    const rate = (name: string) => mb / best[name];
    log(`checkpoint of ${model}: ${mb.toFixed(0)} MB, best of ${rounds} rounds`);
    log(`save: ours ${rate('ours_save').toFixed(0)} MB/s, raw PutObject ${rate('raw_put').toFixed(0)} MB/s (ours/raw ${(rate('ours_save') / rate('raw_put')).toFixed(2)})`);
    log(`load: ours ${rate('ours_load').toFixed(0)} MB/s, raw GetObject ${rate('raw_get').toFixed(0)} MB/s (ours/raw ${(rate('ours_load') / rate('raw_get')).toFixed(2)})`);
    const ms = (name: string) => (best[name] * 1000).toFixed(0);
    if (stages) {
      log(`stages (ms): save = encode with sha256 ${ms('save_encode_sha256')} + put (CRC32, streamed PutObject) ${ms('save_put')}; ` +
        `load = GET transfer ${ms('load_get_transfer')}, new Network without init ${ms('load_new_network_no_init')} (with random init ${ms('load_new_network_random_init')}), ` +
        `sha256 ${ms('load_sha256')}; readStateNetwork in all ${ms('load_read_state_network')}`);
    }
    const r = { ours_save_mb_s: rate('ours_save'), raw_put_mb_s: rate('raw_put'), ours_load_mb_s: rate('ours_load'), raw_get_mb_s: rate('raw_get') };
    const stageMs = stages ? { stages_ms: Object.fromEntries(Object.keys(best).filter((k) => !(k in { ours_save: 1, raw_put: 1, ours_load: 1, raw_get: 1 })).map((k) => [k, round(best[k] * 1000)])) } : {};
    if (json) console.log(JSON.stringify({ model, mb: round(mb), rounds, ...Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v)])), ...stageMs }));
  } finally {
    await minio.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
