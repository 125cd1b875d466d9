// The typed client generated from openapi.yaml (src/generated/openapi.d.ts, openapi-fetch) uploads files
// as Blobs: the multipart body's `file` part is a Blob, so FormData takes it without a cast. The type
// claims are checked by `tsc -p tsconfig.check.json` (this file is in it, @ts-expect-error included);
// at run time the same call uploads a CSV dataset to a listening server.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import createClient from 'openapi-fetch';
import type { operations, paths } from '../../src/generated/openapi.js';
import { createPool, type WorkerPool } from '../../src/workers/pool.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';

type MultipartBody<K extends 'createModel' | 'createDataset'> = operations[K]['requestBody']['content']['multipart/form-data'];

/** A multipart body as FormData: Blobs become file parts, other values text fields. */
function toFormData(body: MultipartBody<'createModel'> | MultipartBody<'createDataset'>): FormData {
  const form = new FormData();
  for (const [name, value] of Object.entries(body)) {
    if (value === undefined) continue;
    if (value instanceof Blob) form.append(name, value, 'upload');
    else form.append(name, String(value));
  }
  return form;
}

// Type-level: a Blob is a file part; a file name or the bytes as text are not.
const model = new Blob([new Uint8Array([0x50, 0x4b, 0x03, 0x04])], { type: 'application/octet-stream' });
export const modelUpload: MultipartBody<'createModel'> = { file: model, name: 'classifier' };
// @ts-expect-error the client wants the file's bytes, not its name
export const notAFile: MultipartBody<'createDataset'> = { file: 'patients.csv', name: 'patients' };
export const fileTypeIsBlob: MultipartBody<'createModel'>['file'] extends Blob ? true : false = true;

let t: TestApp;
let pool: WorkerPool;
let baseUrl: string;

before(async () => {
  pool = createPool({ size: 1, torchThreads: 1 }); // the upload's conversion runs in a worker, as in the server
  t = await buildTestApp({ pool });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
});
after(async () => {
  await t.close();
  await pool.close();
});

test('the generated client uploads a Blob as the multipart file part (FormData through bodySerializer), no cast', async () => {
  const client = createClient<paths>({ baseUrl, headers: t.auth() });
  const rows = Array.from({ length: 30 }, (_, i) => `${20 + i},${110 + (i % 7)},${i % 3}\n`);
  const csv = ['age,blood_pressure,label\n', ...rows].join('');
  const file = new Blob([csv], { type: 'text/csv' });
  const { data, error, response } = await client.POST('/v1/datasets', {
    body: { file, name: 'patients', privacyLimit: 4, delta: 1e-5 },
    bodySerializer: toFormData,
  });
  assert.equal(response.status, 201, JSON.stringify(error));
  assert.ok(data);
  assert.equal(data.format, 'csv');
  assert.equal(data.sizeBytes, file.size);
  assert.equal(data.sampleCount, 30);
  assert.equal(data.privacyLimit, 4);
});
