// alexnet down: stops the services that `alexnet up` started, found through
// <dir>/services.json. Their state (Temporal's SQLite file, MinIO's data and keys) stays.
import * as fs from 'fs';
import * as path from 'path';

import { ServiceName, stopPid } from '../../infra/services';
import { parse } from './args';
import { DEFAULT_DIR, readState, stateFile } from './up';

const HELP = `usage: alexnet down [--dir ${DEFAULT_DIR}]

Stops the Temporal dev server and MinIO recorded in <dir>/services.json (SIGTERM, then
SIGKILL after 10 s). Their data stays, so \`alexnet up\` continues where they were.`;

export async function down(argv: string[]): Promise<void> {
  const o = parse(argv, { dir: { type: 'string' } }, HELP);
  const dir = path.resolve(o.dir ?? DEFAULT_DIR);
  const state = readState(dir);
  const names = (['temporal', 'minio'] as ServiceName[]).filter((n) => state[n]);
  if (names.length === 0) {
    console.log(`nothing to stop: no services recorded in ${stateFile(dir)}`);
    return;
  }
  for (const name of names) {
    const pid = state[name]!.pid;
    // stopPid checks that pid is still our binary, so a reused pid is never killed.
    console.log(await stopPid(pid, name) ? `stopped ${name} (pid ${pid})` : `${name} was not running (pid ${pid})`);
  }
  fs.rmSync(stateFile(dir));
}
