// The S3 object store only, on a real MinIO server (infra/services.ts): full-object
// CRC32 checksums up and down, aborted multipart uploads, paged listings, messages for a
// missing bucket, missing or wrong credentials and denied access that never contain the
// secret, retried 503s, and endpoint, path style and region from the environment. The
// cases both backends share are in store.test.ts.
import { spawnSync } from 'child_process';
import { createHash, createHmac } from 'crypto';
import * as net from 'net';
import * as path from 'path';
import { inspect } from 'util';
import test from 'ava';
import {
  AbortMultipartUploadCommand, CreateMultipartUploadCommand, HeadObjectCommand, ListMultipartUploadsCommand,
} from '@aws-sdk/client-s3';

import { openStore, S3Store, StoreConfigurationError } from '../activities/store/index';
import type { MinioService } from '../infra/services';
import { ROOT } from './helpers';
import { BUCKET, bytes, chunked, collect, flakyProxy, MiB, pool, s3, s3Test, sorted } from './store-helpers';

s3Test('uploads carry full-object CRC32 checksums; large bodies go up as multipart', async (t) => {
  const store = s3.fresh(t) as S3Store;
  await store.put('small', 'checksummed');
  const body = bytes(17 * MiB, 9);
  await store.putStream('big', chunked(body, MiB));
  const head = (key: string) => store.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${store.prefix}/${key}`, ChecksumMode: 'ENABLED' }));
  const small = await head('small');
  t.truthy(small.ChecksumCRC32, 'PutObject stored a CRC32');
  const big = await head('big');
  t.regex(big.ETag ?? '', /-\d+"?$/, 'multipart ETag');
  t.regex(big.ChecksumCRC32 ?? '', /^[A-Za-z0-9+/]{6}==$/, 'a whole-object CRC32, not a composite "...-N"');
  t.is(big.ChecksumType, 'FULL_OBJECT');
  t.true((await store.get('big')).equals(body));
});

s3Test('downloads are checked against the stored CRC32', async (t) => {
  const store = s3.fresh(t) as S3Store;
  const body = bytes(17 * MiB, 10);
  await store.put('small', 'checksummed');
  await store.putStream('big', chunked(body, MiB));
  // Simulate damage in transit: the checksum the server sends no longer matches the body.
  store.client.middlewareStack.add((next) => async (args) => {
    const out = await next(args);
    const headers = (out.response as { headers?: Record<string, string> }).headers;
    if (headers?.['x-amz-checksum-crc32']) headers['x-amz-checksum-crc32'] = 'AAAAAA==';
    return out;
  }, { step: 'deserialize', name: 'corruptChecksumForTest', priority: 'low' });
  await t.throwsAsync(store.get('small'), { message: /Checksum mismatch/ });
  await t.throwsAsync(store.get('big'), { message: /Checksum mismatch/ });
});

s3Test('a failed multipart upload is aborted: no parts left behind', async (t) => {
  const store = s3.fresh(t) as S3Store;
  const pending = async (key: string) => (await store.client.send(new ListMultipartUploadsCommand({
    Bucket: BUCKET, Prefix: `${store.prefix}/${key}`,
  }))).Uploads ?? [];
  // The listing does show an upload left open (so an empty one below means something).
  const open = await store.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: `${store.prefix}/open` }));
  t.is((await pending('open')).length, 1);
  await store.client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: `${store.prefix}/open`, UploadId: open.UploadId }));
  // The source fails after 20 MiB: two 8 MiB parts are up by then.
  const body = bytes(24 * MiB, 4);
  await t.throwsAsync(store.putStream('broken', chunked(body, MiB, { failAfter: 20 })), { message: /source failed on purpose/ });
  t.deepEqual(await pending('broken'), []);
  t.is(await store.head('broken'), undefined);
});

s3Test('list with a small page size pages through continuation tokens', async (t) => {
  const store = s3.fresh(t, { listPageSize: 7 });
  const keys = Array.from({ length: 53 }, (_, i) => `p/${i}`);
  await pool(keys, 16, (k) => store.put(k, 'v'));
  t.deepEqual((await collect(store.list('p/'))).map((o) => o.key), sorted(keys));
});

s3Test('a missing bucket gets a message naming it', async (t, m) => {
  const store = openStore('s3://no-such-bucket-here/x', { endpoint: m.endpoint });
  for (const op of [() => store.get('k'), () => store.put('k', 'v'), () => collect(store.list(''))]) {
    const err = await t.throwsAsync(op);
    t.regex(err?.message ?? '', /bucket 'no-such-bucket-here' does not exist/);
    t.true(err instanceof StoreConfigurationError, 'a configuration error: callers that retry on their own stop at it');
  }
});

// Credentials come from the process environment, so each case runs in a child process.
function inChild(env: Record<string, string | undefined>, code: string): { out: string } {
  const script = `const s = require(${JSON.stringify(path.join(ROOT, 'dist', 'activities', 'store', 'index.js'))});
    const util = require('util');
    (async () => { ${code} })().then(() => console.log('NO ERROR'), (e) => {
      console.log(e.message); console.log(String(e.stack)); console.log(util.inspect(e, { depth: 8 }));
    });`;
  const childEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...env })) if (v !== undefined) childEnv[k] = v;
  const r = spawnSync(process.execPath, ['-e', script], { env: childEnv, encoding: 'utf8', timeout: 60_000 });
  return { out: r.stdout + r.stderr };
}

s3Test('uri and error messages never contain the secret key', async (t, m) => {
  const secret = m.secretAccessKey;
  const store = s3.fresh(t);
  t.false(store.uri.includes(secret));
  const errs = await Promise.all([
    store.get('missing').catch((e: Error) => e),
    openStore('s3://no-such-bucket-here', { endpoint: m.endpoint }).put('k', 'v').catch((e: Error) => e),
  ]);
  for (const e of errs) {
    t.true(e instanceof Error);
    t.false(`${(e as Error).message}\n${(e as Error).stack}\n${inspect(e, { depth: 8 })}`.includes(secret));
  }
  t.false(inspect(store, { depth: 8 }).includes(secret), 'not in the store object after credentials were resolved');
  // A wrong secret: rejected by the server, message names the variables, not the values.
  const wrong = 'Wr0ngSecretValueThatMustNotLeak1234567890';
  const bad = inChild({ AWS_SECRET_ACCESS_KEY: wrong }, `await s.openStore(${JSON.stringify(store.uri)}, { endpoint: ${JSON.stringify(m.endpoint)} }).get('k');`);
  t.regex(bad.out, /rejected the credentials \(SignatureDoesNotMatch\); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
  t.false(bad.out.includes(wrong), bad.out);
  t.false(bad.out.includes(secret));
});

s3Test('missing credentials get a clear message naming the variables to set', async (t, m) => {
  const none = inChild({
    AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_PROFILE: undefined, AWS_SESSION_TOKEN: undefined,
    AWS_CONFIG_FILE: '/nonexistent/config', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
    AWS_EC2_METADATA_DISABLED: 'true', AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined, AWS_CONTAINER_CREDENTIALS_FULL_URI: undefined,
    AWS_WEB_IDENTITY_TOKEN_FILE: undefined,
  }, `await s.openStore('s3://${BUCKET}/x', { endpoint: ${JSON.stringify(m.endpoint)} }).get('k');`);
  t.regex(none.out, /no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/, none.out);
  t.regex(none.out, new RegExp(`s3://${BUCKET}/x`));
});

// MinIO's STS AssumeRole with a session policy gives credentials that may only list the
// bucket; signed by hand (SigV4) since no STS client is a dependency.
async function restrictedCredentials(m: MinioService, policy: object): Promise<Record<string, string>> {
  const sha = (x: string) => createHash('sha256').update(x).digest('hex');
  const hmac = (k: string | Buffer, x: string) => createHmac('sha256', k).update(x).digest();
  const body = new URLSearchParams({ Action: 'AssumeRole', Version: '2011-06-15', DurationSeconds: '900', Policy: JSON.stringify(policy) }).toString();
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', host: new URL(m.endpoint).host, 'x-amz-date': amzDate };
  const names = Object.keys(headers).sort();
  const canonical = ['POST', '/', '', ...names.map((h) => `${h}:${headers[h]}`), '', names.join(';'), sha(body)].join('\n');
  const scope = `${amzDate.slice(0, 8)}/${m.region}/sts/aws4_request`;
  const key = [m.region, 'sts', 'aws4_request'].reduce((k, x) => hmac(k, x), hmac(`AWS4${m.secretAccessKey}`, amzDate.slice(0, 8)));
  const signature = createHmac('sha256', key).update(['AWS4-HMAC-SHA256', amzDate, scope, sha(canonical)].join('\n')).digest('hex');
  const res = await fetch(m.endpoint, { method: 'POST', body, headers: {
    ...headers, authorization: `AWS4-HMAC-SHA256 Credential=${m.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`,
  } });
  const xml = await res.text();
  const field = (name: string) => new RegExp(`<${name}>([^<]+)</${name}>`).exec(xml)?.[1] ?? '';
  if (!res.ok || !field('SessionToken')) throw new Error(`AssumeRole failed: HTTP ${res.status}`);
  return { AWS_ACCESS_KEY_ID: field('AccessKeyId'), AWS_SECRET_ACCESS_KEY: field('SecretAccessKey'), AWS_SESSION_TOKEN: field('SessionToken') };
}

s3Test('access denied gets a message naming the bucket', async (t, m) => {
  const store = s3.fresh(t);
  await store.put('k', 'v');
  const creds = await restrictedCredentials(m, { Version: '2012-10-17', Statement: [
    { Effect: 'Allow', Action: ['s3:ListBucket'], Resource: [`arn:aws:s3:::${BUCKET}`] }] });
  const r = inChild(creds, `const st = s.openStore(${JSON.stringify(store.uri)}, { endpoint: ${JSON.stringify(m.endpoint)} });
    console.log('listed', (await (async () => { const a = []; for await (const o of st.list('')) a.push(o.key); return a; })()).join(','));
    for (const op of [() => st.get('k'), () => st.head('k'), () => st.put('k', 'w')]) {
      try { await op(); console.log('allowed'); } catch (e) { console.log('denied:', e.message); }
    }`);
  t.regex(r.out, /listed k\n/, 'session credentials (AWS_SESSION_TOKEN) from the environment work');
  t.is(r.out.match(/denied: get 'k' .*access denied to bucket 'alexnet-store-test'/g)?.length, 1, r.out);
  t.regex(r.out, /denied: head 'k' .*access denied to bucket 'alexnet-store-test'/);
  t.regex(r.out, /denied: put 'k' .*access denied to bucket 'alexnet-store-test'/);
  t.false(r.out.includes(creds.AWS_SECRET_ACCESS_KEY) || r.out.includes(m.secretAccessKey));
  t.is((await store.get('k')).toString(), 'v');
});

s3Test('transient 503s are retried; maxAttempts bounds the retries', async (t, m) => {
  const proxy = await flakyProxy(m.endpoint, 2);
  try {
    const prefix = s3.fresh(t).uri.slice(`s3://${BUCKET}/`.length);
    const store = openStore(`s3://${BUCKET}/${prefix}`, { endpoint: proxy.endpoint });
    await store.put('k', 'survived');
    t.is(proxy.requests(), 3, 'two 503s, then success');
    t.is((await store.get('k')).toString(), 'survived');
    const proxy2 = await flakyProxy(m.endpoint, 5);
    try {
      const impatient = openStore(`s3://${BUCKET}/${prefix}`, { endpoint: proxy2.endpoint, maxAttempts: 2 });
      await t.throwsAsync(impatient.put('k2', 'x'), { message: /SlowDown/ });
      t.is(proxy2.requests(), 2);
    } finally {
      await proxy2.close();
    }
  } finally {
    await proxy.close();
  }
});

s3Test('endpoint, path style and region come from the environment too', async (t, m) => {
  const uri = s3.fresh(t).uri;
  const code = `const st = s.openStore(${JSON.stringify(uri)}); await st.put('env', 'ok'); console.log('read', (await st.get('env')).toString());`;
  // This process has the whole standard environment (startS3): each case names the
  // variables it tests and removes the ones that would stand in for them.
  for (const env of [{ AWS_ENDPOINT_URL_S3: m.endpoint, ALEXNET_S3_FORCE_PATH_STYLE: '1', AWS_REGION: m.region, AWS_ENDPOINT_URL: undefined },
    { AWS_ENDPOINT_URL: m.endpoint, AWS_REGION: undefined, AWS_DEFAULT_REGION: undefined, AWS_ENDPOINT_URL_S3: undefined, ALEXNET_S3_FORCE_PATH_STYLE: undefined }]) {
    t.regex(inChild(env, code).out, /read ok\nNO ERROR/, JSON.stringify(env));
  }
});

// An endpoint that accepts connections and never answers (issue 23, finding 4): every
// request fails once the read timeout has passed on each attempt, naming the store and
// the settings to change, instead of hanging for ever.
// Serial: ava runs it before the concurrent cases, so its environment changes meet none of them.
test.serial('a store that accepts connections and never answers fails each request after the read timeout, retried, with a clear message', async (t) => {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const silent = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    sockets.forEach((s) => s.destroy());
    silent.close();
  });
  const endpoint = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
  const store = openStore('s3://silent-bucket/p', { endpoint, region: 'us-east-1', readTimeoutMs: 300, maxAttempts: 2 });
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  t.teardown(() => {
    for (const [k, v] of [['AWS_ACCESS_KEY_ID', saved.id], ['AWS_SECRET_ACCESS_KEY', saved.secret]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  process.env.AWS_ACCESS_KEY_ID = 'test-key-id';  // signing needs some; the server never reads them
  process.env.AWS_SECRET_ACCESS_KEY = 'test-secret';
  const t0 = performance.now();
  const err = await t.throwsAsync(store.head('runs/r/latest.json'));
  const seconds = (performance.now() - t0) / 1000;
  t.regex(err!.message, /head 'runs\/r\/latest\.json' in s3:\/\/silent-bucket\/p at http:\/\/127\.0\.0\.1:\d+: the store did not answer in time .*ALEXNET_S3_READ_TIMEOUT_MS/);
  t.is(connections, 2, 'the SDK retried the timed-out request once (maxAttempts 2)');
  t.true(seconds < 10, `failed after ${seconds.toFixed(1)} s, not hung`);
  // The environment sets the defaults; a bad value is refused naming the variable.
  process.env.ALEXNET_S3_READ_TIMEOUT_MS = 'soon';
  try {
    t.throws(() => openStore('s3://silent-bucket', { endpoint }), { message: /ALEXNET_S3_READ_TIMEOUT_MS must be a whole number of milliseconds >= 1, got 'soon'/ });
  } finally {
    delete process.env.ALEXNET_S3_READ_TIMEOUT_MS;
  }
});
