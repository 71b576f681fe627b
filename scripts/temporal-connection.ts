// Temporal connection settings, the same for the worker and every client command: from
// flags, else from the environment variables the official `temporal` CLI reads
// (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_CERT,
// TEMPORAL_TLS_KEY, TEMPORAL_TLS_CA, TEMPORAL_TLS), so a worker runs unchanged against the
// local dev server, a self-hosted cluster or Temporal Cloud. The API key is never logged.
import * as fs from 'fs';

import { Client, Connection } from '@temporalio/client';

export const CONNECTION_FLAGS = {
  address: { type: 'string' },
  namespace: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
} as const;

export const CONNECTION_HELP = `connection (flags, else environment):
  --address     TEMPORAL_ADDRESS     (default 127.0.0.1:7233)
  --namespace   TEMPORAL_NAMESPACE   (default "default")
  --tls-cert    TEMPORAL_TLS_CERT    client certificate file for mTLS
  --tls-key     TEMPORAL_TLS_KEY     client key file for mTLS
  --tls-ca      TEMPORAL_TLS_CA      server CA file
                TEMPORAL_API_KEY     API key (Temporal Cloud); environment only
                TEMPORAL_TLS=true    TLS with system roots`;

// The part of the client's and the worker's connection options we set (both accept it).
export interface ConnectOptions {
  address: string;
  tls?: { serverRootCACertificate?: Buffer; clientCertPair?: { crt: Buffer; key: Buffer } };
  apiKey?: string;
}

export interface ConnectionSettings {
  address: string;
  namespace: string;
  options: ConnectOptions;     // for Connection.connect and NativeConnection.connect
  describe: string;            // safe to print (no secrets)
}

function readFile(path: string, what: string): Buffer {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read the ${what} file ${path}: ${(e as Error).message}`);
  }
}

export function connectionSettings(flags: Partial<Record<keyof typeof CONNECTION_FLAGS, string>> = {}, env = process.env): ConnectionSettings {
  const address = flags.address ?? env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const namespace = flags.namespace ?? env.TEMPORAL_NAMESPACE ?? 'default';
  const cert = flags['tls-cert'] ?? env.TEMPORAL_TLS_CERT;
  const key = flags['tls-key'] ?? env.TEMPORAL_TLS_KEY;
  const ca = flags['tls-ca'] ?? env.TEMPORAL_TLS_CA;
  const apiKey = env.TEMPORAL_API_KEY;
  if (!!cert !== !!key) throw new Error('mTLS needs both a client certificate (TEMPORAL_TLS_CERT / --tls-cert) and its key (TEMPORAL_TLS_KEY / --tls-key)');
  const tlsWanted = !!cert || !!ca || !!apiKey || env.TEMPORAL_TLS === 'true';
  const options: ConnectOptions = { address };
  if (tlsWanted) {
    options.tls = {
      ...(ca ? { serverRootCACertificate: readFile(ca, 'TLS CA') } : {}),
      ...(cert && key ? { clientCertPair: { crt: readFile(cert, 'TLS certificate'), key: readFile(key, 'TLS key') } } : {}),
    };
  }
  if (apiKey) options.apiKey = apiKey;
  const auth = [cert ? 'mTLS' : tlsWanted ? 'TLS' : 'plaintext', apiKey ? 'API key' : undefined].filter(Boolean).join(' + ');
  return { address, namespace, options, describe: `${address} namespace ${namespace} (${auth})` };
}

// A client for the subcommands (train, prepare, eval, schedule-eval); close `connection`
// when done.
export async function connectClient(flags: Partial<Record<keyof typeof CONNECTION_FLAGS, string>>): Promise<{ client: Client; connection: Connection; settings: ConnectionSettings }> {
  const settings = connectionSettings(flags);
  const connection = await Connection.connect(settings.options);
  return { client: new Client({ connection, namespace: settings.namespace }), connection, settings };
}
