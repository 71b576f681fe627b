// A sliding window: work(i) for every i in [0, count), at most `width` at once, each lane
// taking the next index as soon as its previous item is done; after a failure no lane
// takes new work and the first failure is rethrown. Indices are handed out in order, so
// in workflow code the commands it schedules are deterministic on replay; the same helper
// bounds in-flight decodes and writes in activities and scripts.
export async function inLanes(count: number, width: number, work: (index: number) => Promise<void>): Promise<void> {
  if (!Number.isInteger(width) || width < 1) throw new RangeError(`inLanes: width must be a positive integer, got ${width}`);
  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (!failed && next < count) {
      try {
        await work(next++);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, Math.max(1, count)) }, lane));
}
