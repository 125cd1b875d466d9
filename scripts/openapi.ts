// Writes openapi.yaml from the route schemas (the code is the source; the file is the committed
// contract), then regenerates src/generated/openapi.d.ts for the typed client. `npm run openapi`.
// test/http/openapi.test.ts fails when either committed file differs from what this produces.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { stringify } from 'yaml';
import { buildApp } from '../src/app.js';
import { keyProviderFromRootKey } from '../src/enclave/keys.js';
import { developmentCertificateSigner } from '../src/enclave/training-certificate.js';
import { openAuditLog } from '../src/governance/audit.js';
import { openStore } from '../src/store/db.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const OPENAPI_FILE = path.join(repoRoot, 'openapi.yaml');
export const CLIENT_TYPES_FILE = path.join(repoRoot, 'src', 'generated', 'openapi.d.ts');

const HEADER = '# Generated from the route schemas by `npm run openapi`. Do not edit by hand.\n';

/** The OpenAPI document the code describes (built from an in-memory app; nothing listens). */
export async function buildOpenapiDocument(): Promise<Record<string, unknown>> {
  const store = openStore(':memory:');
  const app = await buildApp({
    store,
    audit: openAuditLog(store, Buffer.alloc(32), { highWaterFile: null }),
    pool: { size: 0, run: () => Promise.reject(new Error('no pool')), isAlive: () => false, close: async () => undefined },
    // Nothing is uploaded while the document is built: the blob store is never touched.
    artifacts: {
      blobs: { blobsDir: '/nonexistent', stagingDir: '/nonexistent', sealingKey: { keyId: '0000000000000000', key: Buffer.alloc(32) } },
      sandbox: { timeoutMs: 1000, memoryBytes: 1024 ** 3 },
    },
    maxUploadBytes: 1,
    isAddonLoaded: () => false,
    certificates: developmentCertificateSigner(keyProviderFromRootKey(Buffer.alloc(32), 'none: the document is only built')),
  });
  await app.ready();
  const document = app.swagger() as unknown as Record<string, unknown>;
  await app.close();
  store.close();
  return JSON.parse(JSON.stringify(document)) as Record<string, unknown>;
}

export function renderOpenapiYaml(document: Record<string, unknown>): string {
  return HEADER + stringify(document, { lineWidth: 0 });
}

// A binary string (an uploaded file part, a downloaded file) is a Blob in the client, not a string: what
// FormData takes for a file part and what openapi-fetch's parseAs: 'blob' gives.
const BLOB = ts.factory.createTypeReferenceNode('Blob');

export async function renderClientTypes(yamlText: string): Promise<string> {
  const ast = await openapiTS(yamlText, {
    transform: (schema) => (schema.type === 'string' && schema.format === 'binary' ? BLOB : undefined),
  });
  return `// Generated from openapi.yaml by \`npm run openapi\`. Do not edit by hand.\n${astToString(ast)}`;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('scripts/openapi.ts')) {
  const yamlText = renderOpenapiYaml(await buildOpenapiDocument());
  fs.writeFileSync(OPENAPI_FILE, yamlText);
  fs.mkdirSync(path.dirname(CLIENT_TYPES_FILE), { recursive: true });
  fs.writeFileSync(CLIENT_TYPES_FILE, await renderClientTypes(yamlText));
  console.log(`wrote ${path.relative(repoRoot, OPENAPI_FILE)} and ${path.relative(repoRoot, CLIENT_TYPES_FILE)}`);
}
