// Where things are, resolved once from this file's place in the build: compiled to
// dist/scripts/, so dist/ is one level up and the repository root two. Imports nothing
// of ours.
import * as path from 'path';

export const DIST_DIR = path.resolve(__dirname, '..');
export const REPO_ROOT = path.resolve(DIST_DIR, '..');
// The workflow code a worker bundles (compiled TypeScript).
export const WORKFLOWS_PATH = path.join(DIST_DIR, 'workflows', 'index.js');
