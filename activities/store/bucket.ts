// The bucket an S3 store lives in: whether it exists, and creating it (idempotent). For
// the CLI's --create-bucket and `alexnet up`, before anything writes to the store; the
// store itself never creates buckets. The client is the store's own (openStore: the same
// endpoint, region, path style, retries and credential chain as every read and write),
// or one the caller built for a server it started (`alexnet up`'s MinIO).
import { CreateBucketCommand, HeadBucketCommand, type BucketLocationConstraint, type S3Client } from '@aws-sdk/client-s3';

import { openStore, type OpenStoreOptions } from './index';
import { S3Store } from './s3';

// 'not-s3': a store without buckets (a local folder, created as it is written).
export type BucketState = 'exists' | 'created' | 'missing' | 'not-s3';

export interface BucketOptions extends OpenStoreOptions {
  client?: S3Client;  // instead of the store's client
}

interface SdkError { name?: string; message?: string; $metadata?: { httpStatusCode?: number } }

interface Target { client: S3Client; bucket: string; where: string }

async function target(storeUri: string, options: BucketOptions): Promise<Target | undefined> {
  const { client: given, ...storeOptions } = options;
  const store = openStore(storeUri, storeOptions);
  if (!(store instanceof S3Store)) return undefined;
  const client = given ?? store.client;
  // For messages: the endpoint the client talks to (never credentials), '' for AWS itself.
  const e = client.config.isCustomEndpoint && client.config.endpoint ? await client.config.endpoint() : undefined;
  const where = e ? ` at ${e.protocol}//${e.hostname}${e.port ? `:${e.port}` : ''}${e.path === '/' ? '' : e.path}` : '';
  return { client, bucket: store.bucket, where };
}

// An SDK error as a short message that names the bucket and says what to do.
function failure(t: Target, op: string, err: unknown): Error {
  const e = (err ?? {}) as SdkError;
  const name = e.name ?? 'Error';
  const what = `${op} bucket '${t.bucket}'${t.where}`;
  let msg: string;
  if (name === 'CredentialsProviderError' || /could not load credentials/i.test(e.message ?? '')) {
    msg = `${what}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)`;
  } else if (name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch') {
    msg = `${what}: the server rejected the credentials (${name}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`;
  } else if (name === 'BucketAlreadyExists') {
    msg = `${what}: the name is taken by another account; choose another bucket`;
  } else if (name === 'AccessDenied' || name === 'Forbidden' || e.$metadata?.httpStatusCode === 403) {
    msg = `${what}: access denied; the credentials lack permission to ${op} it`;
  } else {
    msg = `${what} failed: ${name}${e.message && e.message !== name ? `: ${e.message}` : ''}`;
  }
  return Object.assign(new Error(msg, { cause: err }), { code: name });
}

async function exists(t: Target): Promise<boolean> {
  try {
    await t.client.send(new HeadBucketCommand({ Bucket: t.bucket }));
    return true;
  } catch (err) {
    const e = err as SdkError;
    if (e?.name === 'NotFound' || e?.name === 'NoSuchBucket' || e?.$metadata?.httpStatusCode === 404) return false;
    throw failure(t, 'check', err);
  }
}

export interface BucketCheck {
  state: BucketState;
  bucket?: string;  // the bucket's name (S3 stores)
  where: string;    // for messages: ' at http://host:port' for a custom endpoint, else ''
}

// Creates the store's bucket unless it exists (create: false only checks): 'created',
// 'exists' (also when another process created it in between: BucketAlreadyOwnedByYou),
// 'missing' (create false) or 'not-s3'. Throws when the server cannot say or refuses (no
// credentials, access denied, unreachable, the name taken by another account).
export async function ensureBucket(storeUri: string, options: BucketOptions & { create?: boolean } = {}): Promise<BucketCheck> {
  const { create = true, ...rest } = options;
  const t = await target(storeUri, rest);
  if (!t) return { state: 'not-s3', where: '' };
  const result = (state: BucketState): BucketCheck => ({ state, bucket: t.bucket, where: t.where });
  if (await exists(t)) return result('exists');
  if (!create) return result('missing');
  // Outside us-east-1, AWS wants the region named; elsewhere (MinIO) it must match the server's.
  const region = await t.client.config.region();
  try {
    await t.client.send(new CreateBucketCommand({
      Bucket: t.bucket, ...(region && region !== 'us-east-1' ? { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } } : {}),
    }));
    return result('created');
  } catch (err) {
    if ((err as SdkError)?.name === 'BucketAlreadyOwnedByYou') return result('exists');
    throw failure(t, 'create', err);
  }
}
