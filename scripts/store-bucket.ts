// The store's bucket, checked before a command writes to an S3 store (or starts a workflow
// that does): --create-bucket creates a missing one; without it a missing bucket is an
// error that says so, before any workflow starts. Local stores need nothing.
import { ensureBucket } from '../activities/store/bucket';

export const CREATE_BUCKET_FLAG = { 'create-bucket': { type: 'boolean' } } as const;
export const CREATE_BUCKET_HELP = `--create-bucket  create the store's S3 bucket if it is missing (with the store's own
                 endpoint and credentials: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)`;

export async function checkStoreBucket(store: string, create: boolean): Promise<void> {
  let check;
  try {
    check = await ensureBucket(store, { create });
  } catch (e) {
    if (create) throw e;
    // A workflow's writes come from the workers, which may hold credentials this process
    // lacks: a check that got no answer is no reason to refuse.
    console.error(`alexnet: could not check the store's bucket (${(e as Error).message}); going on`);
    return;
  }
  if (check.state === 'created') console.error(`created bucket '${check.bucket}'${check.where}`);
  if (check.state === 'missing') {
    const err = new Error(`${store}: bucket '${check.bucket}' does not exist${check.where}; pass --create-bucket to create it`);
    err.name = 'NoSuchBucket';
    throw err;
  }
}
