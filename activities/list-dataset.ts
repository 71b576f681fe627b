// The listing activity: recognizes the dataset's layout, pages through all its objects
// and writes the per-split listings and the class names into the store (the result that
// travels through Temporal is only a summary).
import { writeListing } from './datasets';

export async function listDataset(input: { dataset: string; store: string; name: string }): Promise<{ layout: string; classes: number; splits: Record<string, number> }> {
  return writeListing(input.dataset, input.store, input.name);
}
