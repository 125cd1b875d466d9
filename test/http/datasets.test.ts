// POST/GET/DELETE /v1/datasets through app.inject with a real worker pool and sandbox: each format is
// converted to the canonical form, privacy settings are checked, and visibility follows the dataset's
// policy: private to its owner by default, seen by the trainers it names.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openBlob } from '../../src/artifacts/blob-store.js';
import { datasetLayout } from '../../src/artifacts/datasets.js';
import { MAX_CLASS_INDEX } from '../../src/artifacts/formats/canonical.js';
import { encodeSafetensors, readSafetensors } from '../../src/artifacts/formats/safetensors.js';
import { createPool, type WorkerPool } from '../../src/workers/pool.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { type FormFile, multipartForm } from '../helpers/multipart.js';
import { testdataPath } from '../helpers/testdata.js';
import { readStoredZip, storedZip } from '../helpers/zip.js';

let t: TestApp;
let pool: WorkerPool;
let owner: string;
let other: string;
let otherId: string;

before(async () => {
  pool = createPool({ size: 1, torchThreads: 1 });
  t = await buildTestApp({ pool, maxUploadBytes: 64 * 1024 * 1024 });
  owner = t.principal('hospital-a').token;
  ({ token: other, id: otherId } = t.principal('data-scientist'));
});
after(async () => {
  await t.close();
  await pool.close();
});

async function upload(fields: Record<string, string>, files: FormFile[], token = owner) {
  const form = await multipartForm(fields, files);
  return t.app.inject({ method: 'POST', url: '/v1/datasets', payload: form.payload, headers: { ...form.headers, ...t.auth(token) } });
}

const csv = (rows: number) =>
  `${['age,blood_pressure,label', ...Array.from({ length: rows }, (_, i) => `${20 + i},${110 + (i % 7)},${i % 3}`)].join('\n')}\n`;

async function canonicalOf(id: string) {
  const reader = await openBlob(t.blobs, { artifactId: id, kind: 'dataset-tensors' });
  const parts: Buffer[] = [];
  for await (const chunk of reader.chunks()) parts.push(chunk);
  return readSafetensors(Buffer.concat(parts));
}

async function assertRefused(response: Awaited<ReturnType<typeof upload>>, status: number, slug: string, detail?: RegExp) {
  assert.equal(response.statusCode, status, response.body);
  const problem = response.json();
  assert.equal(problem.type, `urn:bastion:problem:${slug}`);
  if (detail) assert.match(problem.detail, detail);
  assert.deepEqual(fs.readdirSync(t.blobs.stagingDir), []);
  return problem;
}

describe('uploading datasets', () => {
  test('a CSV is detected, converted to inputs.0 [n, features] and integer labels, and its classes recorded', async () => {
    const body = csv(40);
    const res = await upload({ name: 'patients', privacyLimit: '4', delta: '1e-5' }, [{ content: body, filename: 'patients.csv' }]);
    assert.equal(res.statusCode, 201, res.body);
    const dataset = res.json();
    assert.equal(dataset.format, 'csv');
    assert.equal(dataset.sampleCount, 40);
    assert.equal(dataset.privacyLimit, 4);
    assert.equal(dataset.delta, 1e-5);
    assert.equal(dataset.allowNonPrivate, false);
    // Without a policy it is private to its owner: no trainer, DP only, releases to the trainer.
    assert.deepEqual(dataset.policy, { trainers: [], allowEvaluation: true, allowNonPrivate: false, release: 'trainer' });
    assert.deepEqual(dataset.inputs, [{ name: 'inputs.0', dtype: 'F32', shape: [40, 2] }]);
    assert.deepEqual(dataset.labels, { name: 'labels', dtype: 'I64', shape: [40] });
    assert.deepEqual(dataset.labelClasses, [0, 1, 2]);
    assert.equal(dataset.sha256, createHash('sha256').update(body).digest('hex'));
    const canonical = await canonicalOf(dataset.id);
    assert.deepEqual(
      canonical.tensors.map((x) => x.name),
      ['inputs.0', 'labels'],
    );
    assert.deepEqual(Array.from(new Float32Array(new Uint8Array(canonical.tensors[0]!.data).buffer).slice(0, 4)), [20, 110, 21, 111]);
  });

  test('a safetensors file with BastionAI names becomes canonical; allowNonPrivate and the default δ are kept', async () => {
    const n = 50;
    const file = encodeSafetensors([
      { name: 'samples_0', dtype: 'F32', shape: [n, 3], data: new Uint8Array(new Float32Array(n * 3).fill(0.5).buffer) },
      { name: 'labels', dtype: 'I64', shape: [n], data: new Uint8Array(new BigInt64Array(n).fill(1n).buffer) },
    ]);
    const res = await upload({ name: 'bank', privacyLimit: '2', allowNonPrivate: 'true' }, [{ content: file }]);
    assert.equal(res.statusCode, 201, res.body);
    const dataset = res.json();
    assert.equal(dataset.format, 'safetensors');
    assert.equal(dataset.allowNonPrivate, true);
    assert.equal(dataset.policy.allowNonPrivate, true, 'the older form field sets the policy');
    assert.equal(dataset.delta, 1e-5);
    assert.deepEqual(dataset.inputs, [{ name: 'inputs.0', dtype: 'F32', shape: [n, 3] }]);
    // Its bytes already are the canonical tensors: no second copy, the layout points into the upload.
    assert.equal(fs.existsSync(path.join(t.blobs.blobsDir, 'dataset-tensors', `${dataset.id}.sealed`)), false);
    const layout = datasetLayout({ store: t.store }, dataset.id);
    assert.equal(layout.blob, 'dataset');
    const headerEnd = 8 + Number(file.readBigUInt64LE(0));
    assert.deepEqual(
      layout.tensors.map((x) => [x.name, x.offsetBytes, x.sizeBytes]),
      [
        ['inputs.0', headerEnd, n * 3 * 4],
        ['labels', headerEnd + n * 3 * 4, n * 8],
      ],
    );
  });

  test('a BastionAI TorchScript dataset is loaded in the sandbox; its privacy_limit becomes the limit', async () => {
    const bytes = fs.readFileSync(testdataPath('torchscript', 'torch-2.6', 'dataset_bastion.script.pt'));
    const res = await upload({ name: 'mnist-subset' }, [{ content: bytes }]);
    assert.equal(res.statusCode, 201, res.body);
    const dataset = res.json();
    assert.equal(dataset.format, 'torchscript');
    assert.equal(dataset.sampleCount, 100);
    assert.equal(dataset.privacyLimit, 6);
    assert.deepEqual(dataset.inputs, [{ name: 'inputs.0', dtype: 'F32', shape: [100, 1, 28, 28] }]);
    assert.deepEqual(dataset.labels, { name: 'labels', dtype: 'I64', shape: [100] });
  });

  test("a dataset without a policy is its owner's alone: any other principal, admins too, gets 404 and does not see it listed", async () => {
    const created = (await upload({ name: 'private-by-default', privacyLimit: '1' }, [{ content: csv(20) }])).json();
    for (const token of [other, t.adminToken]) {
      for (const [method, url] of [
        ['GET', `/v1/datasets/${created.id}`],
        ['GET', `/v1/datasets/${created.id}/privacy`],
        ['GET', `/v1/datasets/${created.id}/content`],
        ['DELETE', `/v1/datasets/${created.id}`],
      ] as const) {
        const res = await t.app.inject({ method, url, headers: t.auth(token) });
        assert.equal(res.statusCode, 404, `${method} ${url}`);
        assert.equal(res.json().detail, `No dataset with id ${created.id}`, 'the same answer as for an id that names nothing');
      }
      const put = await t.app.inject({
        method: 'PUT',
        url: `/v1/datasets/${created.id}/policy`,
        payload: { trainers: 'everyone' },
        headers: t.auth(token),
      });
      assert.equal(put.statusCode, 404);
      assert.ok(
        !(await t.app.inject({ url: '/v1/datasets', headers: t.auth(token) }))
          .json()
          .items.some((d: { id: string }) => d.id === created.id),
      );
    }
    assert.deepEqual((await t.app.inject({ url: `/v1/datasets/${created.id}`, headers: t.auth(owner) })).json(), created);
    assert.ok(
      (await t.app.inject({ url: '/v1/datasets', headers: t.auth(owner) })).json().items.some((d: { id: string }) => d.id === created.id),
    );
  });

  test('a trainer its policy names sees the dataset (without labelClasses, trainers, the file hash, size and commitment salt), but only the owner downloads, deletes or changes its policy', async () => {
    const body = csv(20);
    const created = (
      await upload(
        { name: 'shared-with-a-trainer', privacyLimit: '1', policy: JSON.stringify({ trainers: [otherId], maxEpsilonPerTraining: 0.5 }) },
        [{ content: body }],
      )
    ).json();
    assert.deepEqual(created.policy, {
      trainers: [otherId],
      maxEpsilonPerTraining: 0.5,
      allowEvaluation: true,
      allowNonPrivate: false,
      release: 'trainer',
    });
    const seen = await t.app.inject({ url: `/v1/datasets/${created.id}`, headers: t.auth(other) });
    assert.equal(seen.statusCode, 200);
    // Everything but which labels occur (a fact about the data), whom else it is shared with, and the file's
    // hash and size: with every record but one known, a hash tests guesses of the last, and a CSV's size
    // moves with its values. The commitment salt is what keeps certificates from being such a hash.
    const {
      labelClasses,
      sha256,
      sizeBytes,
      commitmentSalt,
      policy: { trainers, ...policy },
      ...catalogue
    } = created;
    assert.deepEqual(labelClasses, [0, 1, 2]);
    assert.deepEqual(trainers, [otherId]);
    assert.equal(sha256, createHash('sha256').update(body).digest('hex'));
    assert.equal(sizeBytes, Buffer.byteLength(body));
    assert.match(commitmentSalt, /^[0-9a-f]{64}$/);
    assert.deepEqual(seen.json(), { ...catalogue, policy });
    assert.deepEqual((await t.app.inject({ url: `/v1/datasets/${created.id}`, headers: t.auth(owner) })).json(), created);
    assert.deepEqual(
      (await t.app.inject({ url: '/v1/datasets', headers: t.auth(other) })).json().items.filter((d: { id: string }) => d.id === created.id),
      [{ ...catalogue, policy }],
    );
    assert.equal((await t.app.inject({ url: `/v1/datasets/${created.id}/privacy`, headers: t.auth(other) })).statusCode, 200);
    for (const [method, url, payload] of [
      ['GET', `/v1/datasets/${created.id}/content`, undefined],
      ['DELETE', `/v1/datasets/${created.id}`, undefined],
      ['PUT', `/v1/datasets/${created.id}/policy`, { trainers: 'everyone' }],
    ] as const) {
      const res = await t.app.inject({ method, url, headers: t.auth(other), ...(payload ? { payload } : {}) });
      assert.equal(res.statusCode, 403, `${method} ${url}`);
      assert.equal(res.json().rule, 'dataset.owner');
    }
    assert.deepEqual(
      (await t.app.inject({ url: `/v1/datasets/${created.id}`, headers: t.auth(owner) })).json(),
      created,
      'the refused policy change changed nothing',
    );
    const content = await t.app.inject({ url: `/v1/datasets/${created.id}/content`, headers: t.auth(owner) });
    assert.equal(content.statusCode, 200);
    assert.equal(content.body, body);
    const deleted = await t.app.inject({ method: 'DELETE', url: `/v1/datasets/${created.id}`, headers: t.auth(owner) });
    assert.equal(deleted.statusCode, 204);
    for (const kind of ['dataset', 'dataset-tensors'])
      assert.equal(fs.existsSync(path.join(t.blobs.blobsDir, kind, `${created.id}.sealed`)), false);
    assert.equal((await t.app.inject({ url: `/v1/datasets/${created.id}`, headers: t.auth(owner) })).statusCode, 404);
  });
});

describe('refused datasets leave nothing behind', () => {
  const rows = () => (t.store.db.prepare('SELECT count(*) AS n FROM datasets').get() as { n: number }).n;

  test('a CSV with a ragged row gets 422 naming the line', async () => {
    const before = rows();
    await assertRefused(
      await upload({ name: 'x', privacyLimit: '1' }, [{ content: 'a,b,label\n1,2,0\n3,0\n' }]),
      422,
      'unprocessable-dataset',
      /line 3/,
    );
    assert.equal(rows(), before);
  });

  test('text in a numeric column gets 422 naming the column', async () => {
    await assertRefused(
      await upload({ name: 'x', privacyLimit: '1' }, [{ content: 'a,b,label\n1,2,0\n3,four,1\n' }]),
      422,
      'unprocessable-dataset',
      /\bb\b/,
    );
  });

  test('a safetensors header that lies about offsets gets 422', async () => {
    const good = encodeSafetensors([
      { name: 'inputs', dtype: 'F32', shape: [4, 2], data: new Uint8Array(32) },
      { name: 'labels', dtype: 'I64', shape: [4], data: new Uint8Array(32) },
    ]);
    const headerLength = Number(good.readBigUInt64LE(0));
    const header = good
      .subarray(8, 8 + headerLength)
      .toString('utf8')
      .replace('[0,32]', '[0,64]');
    const lying = Buffer.concat([good.subarray(0, 8), Buffer.from(header), good.subarray(8 + headerLength)]);
    await assertRefused(
      await upload({ name: 'x', privacyLimit: '1', format: 'safetensors' }, [{ content: lying }]),
      422,
      'unprocessable-dataset',
    );
  });

  describe('integer labels that are not class indices get 422 naming the problem, and no catalogue entry', () => {
    const rule = new RegExp(`integer labels must be class indices from 0 to ${MAX_CLASS_INDEX}`);
    const catalogueNames = async () =>
      (await t.app.inject({ url: '/v1/datasets', headers: t.auth(owner) })).json().items.map((d: { name: string }) => d.name);
    const assertLabelsRefused = async (name: string, response: Awaited<ReturnType<typeof upload>>, detail: RegExp) => {
      const before = rows();
      const problem = await assertRefused(response, 422, 'unprocessable-dataset', detail);
      assert.match(response.headers['content-type'] as string, /^application\/problem\+json/);
      assert.equal(problem.status, 422);
      assert.match(problem.detail, rule);
      assert.equal(rows(), before);
      assert.ok(!(await catalogueNames()).includes(name));
    };
    const safetensors = (labels: bigint[]) =>
      encodeSafetensors([
        { name: 'inputs', dtype: 'F32', shape: [labels.length, 2], data: new Uint8Array(labels.length * 8) },
        { name: 'labels', dtype: 'I64', shape: [labels.length], data: new Uint8Array(new BigInt64Array(labels).buffer) },
      ]);
    /** The BastionAI TorchScript dataset with its first label (data/1, int64 [100]) replaced. */
    const torchscript = (label: bigint) => {
      const entries = readStoredZip(fs.readFileSync(testdataPath('torchscript', 'torch-2.6', 'dataset_bastion.script.pt')));
      const labels = entries.find((e) => e.name.endsWith('/data/1'))!;
      assert.equal(labels.data.length, 100 * 8, 'data/1 holds the int64 labels');
      const data = Buffer.from(labels.data);
      data.writeBigInt64LE(label, 0);
      return storedZip(entries.map((e) => (e === labels ? { name: e.name, data } : e)));
    };

    test('safetensors with a label of −1, streamed or not', async () => {
      await assertLabelsRefused(
        'neg-st',
        await upload({ name: 'neg-st', privacyLimit: '1' }, [{ content: safetensors([0n, -1n, 1n]) }]),
        /tensor "labels" holds a negative label at element 1/,
      );
      await assertLabelsRefused(
        'neg-st-declared',
        await upload({ name: 'neg-st-declared', privacyLimit: '1', format: 'safetensors' }, [{ content: safetensors([0n, -1n, 1n]) }]),
        /holds a negative label at element 1/,
      );
    });

    test('safetensors with an I64 label of 2^63 − 1', async () => {
      await assertLabelsRefused(
        'huge-st',
        await upload({ name: 'huge-st', privacyLimit: '1' }, [{ content: safetensors([2n ** 63n - 1n, 0n]) }]),
        /holds a label above 16777215 at element 0/,
      );
    });

    test('safetensors with the label MAX_CLASS_INDEX is accepted, one more is refused', async () => {
      const res = await upload({ name: 'max-st', privacyLimit: '1' }, [{ content: safetensors([0n, BigInt(MAX_CLASS_INDEX)]) }]);
      assert.equal(res.statusCode, 201, res.body);
      assert.deepEqual(res.json().labelClasses, [0, MAX_CLASS_INDEX]);
      await assertLabelsRefused(
        'max-plus-st',
        await upload({ name: 'max-plus-st', privacyLimit: '1' }, [{ content: safetensors([0n, BigInt(MAX_CLASS_INDEX) + 1n]) }]),
        /above 16777215/,
      );
    });

    test('CSV with a label of −1 or 2^63 − 1', async () => {
      await assertLabelsRefused(
        'neg-csv',
        await upload({ name: 'neg-csv', privacyLimit: '1' }, [{ content: 'a,b,label\n1,2,0\n3,4,-1\n' }]),
        /^line 3, column "label" holds a negative label/,
      );
      await assertLabelsRefused(
        'huge-csv',
        await upload({ name: 'huge-csv', privacyLimit: '1' }, [{ content: `a,b,label\n1,2,${2n ** 63n - 1n}\n3,4,0\n` }]),
        /^line 2, column "label" holds a label above/,
      );
    });

    test('a TorchScript dataset with a label of −1 or 2^63 − 1', async () => {
      await assertLabelsRefused(
        'neg-ts',
        await upload({ name: 'neg-ts' }, [{ content: torchscript(-1n) }]),
        /tensor "labels" holds a negative label at element 0 \(sample 0\)/,
      );
      await assertLabelsRefused(
        'huge-ts',
        await upload({ name: 'huge-ts' }, [{ content: torchscript(2n ** 63n - 1n) }]),
        /tensor "labels" holds a label above 16777215 at element 0/,
      );
    });
  });

  test('an empty file gets 422', async () => {
    await assertRefused(await upload({ name: 'x', privacyLimit: '1' }, [{ content: '' }]), 422, 'unprocessable-dataset', /empty/);
  });

  test('a CSV without privacyLimit is a 400 naming /privacyLimit', async () => {
    const problem = await assertRefused(await upload({ name: 'x' }, [{ content: csv(10) }]), 400, 'validation-failed');
    assert.deepEqual(
      problem.errors.map((e: { pointer: string }) => e.pointer),
      ['/privacyLimit'],
    );
  });

  test('δ at or above 1/n is refused: it would allow releasing whole samples', async () => {
    const problem = await assertRefused(
      await upload({ name: 'x', privacyLimit: '1', delta: '0.2' }, [{ content: csv(10) }]),
      400,
      'validation-failed',
    );
    assert.deepEqual(
      problem.errors.map((e: { pointer: string }) => e.pointer),
      ['/delta'],
    );
  });

  test('form fields are checked: ε must be positive, format one of three, labelColumn only for CSV', async () => {
    const bad = await assertRefused(
      await upload({ name: 'x', privacyLimit: '-1', format: 'parquet' }, [{ content: csv(10) }]),
      400,
      'validation-failed',
    );
    assert.deepEqual(bad.errors.map((e: { pointer: string }) => e.pointer).sort(), ['/format', '/privacyLimit']);
    const safetensors = encodeSafetensors([
      { name: 'inputs', dtype: 'F32', shape: [2, 1], data: new Uint8Array(8) },
      { name: 'labels', dtype: 'I64', shape: [2], data: new Uint8Array(16) },
    ]);
    await assertRefused(
      await upload({ name: 'x', privacyLimit: '1', labelColumn: 'y' }, [{ content: safetensors }]),
      400,
      'validation-failed',
      /labelColumn/,
    );
  });
});
