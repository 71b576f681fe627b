// The last fallback for the Temporal CLI where Go is missing and no `temporal` is on PATH:
// the Temporal SDK's own download (temporal.download, needs that host to be reachable).
// The SDK fetches the CLI into <dir> when it starts a test server; we start one, stop it,
// and print the path of the binary it left there. Plain JS: it runs before tsc.
// usage: node infra/download-temporal.js <dir>
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: node infra/download-temporal.js <dir>');
  fs.mkdirSync(dir, { recursive: true });
  const { TestWorkflowEnvironment } = require('@temporalio/testing');
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'cached-download', downloadDir: dir }, ip: '127.0.0.1', ui: false },
  });
  await env.teardown();
  const found = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/^temporal(-cli)?[^/]*$/.test(e.name) && !/\.(tar|gz|zip)/.test(e.name)) found.push(p);
    }
  };
  walk(dir);
  if (found.length === 0) throw new Error(`the SDK's download left no temporal binary in ${dir}`);
  console.log(found[0]);
}

main().catch((e) => {
  console.error(`download-temporal: ${e.message}`);
  process.exit(1);
});
