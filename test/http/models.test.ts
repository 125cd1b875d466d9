// POST/GET/DELETE /v1/models through app.inject with a real worker pool and the real sandbox: what is
// accepted, what is refused and why, who sees what, and that nothing is left behind by a failure.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createPool, type WorkerPool } from '../../src/workers/pool.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { type FormFile, multipartForm } from '../helpers/multipart.js';
import { testdataPath } from '../helpers/testdata.js';
import { batchModels, hostileModels } from '../helpers/torch-fixtures.js';

let t: TestApp;
let pool: WorkerPool;
let member: string;

before(async () => {
  pool = createPool({ size: 1, torchThreads: 1 });
  t = await buildTestApp({ pool, maxUploadBytes: 8 * 1024 * 1024 });
  member = t.principal('data-scientist').token;
});
after(async () => {
  await t.close();
  await pool.close();
});

const mnist = () => fs.readFileSync(testdataPath('torchscript', 'torch-1.13', 'mnist_cnn.script.pt'));

async function upload(fields: Record<string, string>, files: FormFile[], token = member) {
  const form = await multipartForm(fields, files);
  return t.app.inject({ method: 'POST', url: '/v1/models', payload: form.payload, headers: { ...form.headers, ...t.auth(token) } });
}

function stagingFiles(): string[] {
  return fs.readdirSync(t.blobs.stagingDir);
}
function modelRows(): number {
  return (t.store.db.prepare('SELECT count(*) AS n FROM models').get() as { n: number }).n;
}

/** The upload is refused with this status and problem type, and leaves neither staged file nor row. */
async function assertRefused(response: Awaited<ReturnType<typeof upload>>, status: number, slug: string, detail?: RegExp) {
  assert.equal(response.statusCode, status, response.body);
  assert.match(response.headers['content-type'] as string, /^application\/problem\+json/);
  const problem = response.json();
  assert.equal(problem.type, `urn:bastion:problem:${slug}`);
  if (detail) assert.match(problem.detail, detail);
  assert.deepEqual(stagingFiles(), []);
  return problem;
}

describe('uploading a model', () => {
  test('a TorchScript model is checked, sealed and described: id, sha256, size, parameters, operators', async () => {
    const bytes = mnist();
    const res = await upload({ name: 'mnist', description: 'a small CNN' }, [{ content: bytes, field: 'anything' }]);
    assert.equal(res.statusCode, 201, res.body);
    const model = res.json();
    assert.match(model.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/);
    assert.equal(res.headers.location, `/v1/models/${model.id}`);
    assert.equal(model.sha256, createHash('sha256').update(bytes).digest('hex'));
    assert.equal(model.sizeBytes, bytes.length);
    assert.equal(model.name, 'mnist');
    assert.equal(model.description, 'a small CNN');
    assert.equal(model.check.parameterCount, 26010);
    assert.deepEqual(
      model.check.parameters.map((p: { name: string }) => p.name),
      ['net.0.weight', 'net.0.bias', 'net.3.weight', 'net.3.bias', 'net.7.weight', 'net.7.bias', 'net.9.weight', 'net.9.bias'],
    );
    assert.ok(model.check.operators.includes('aten::conv2d'));
    // An uploaded model: no co-owners, nothing to approve, and without a policy no reader but its owner.
    assert.deepEqual(model.coOwnerIds, []);
    assert.equal(model.release, 'released');
    assert.deepEqual(model.policy, { readers: [] });
    // Sealed at rest: the file under blobs/ is not the upload.
    const sealed = fs.readFileSync(path.join(t.blobs.blobsDir, 'model', `${model.id}.sealed`));
    assert.equal(sealed.indexOf(bytes.subarray(0, 64)), -1);
    assert.deepEqual(stagingFiles(), []);
  });

  test('the owner lists, reads and downloads the model byte-identical; the download carries its sha256', async () => {
    const bytes = fs.readFileSync(testdataPath('torchscript', 'torch-2.6', 'transformer.script.pt'));
    const created = (await upload({ name: 'transformer-2.6' }, [{ content: bytes }])).json();
    const list = await t.app.inject({ url: '/v1/models', headers: t.auth(member) });
    assert.equal(list.statusCode, 200);
    assert.ok(list.json().items.some((m: { id: string }) => m.id === created.id));
    const one = await t.app.inject({ url: `/v1/models/${created.id}`, headers: t.auth(member) });
    assert.deepEqual(one.json(), created);
    const content = await t.app.inject({ url: `/v1/models/${created.id}/content`, headers: t.auth(member) });
    assert.equal(content.statusCode, 200);
    assert.equal(content.headers['content-type'], 'application/octet-stream');
    assert.equal(content.headers['x-content-sha256'], created.sha256);
    assert.deepEqual(content.rawPayload, bytes);
  });

  test('a principal its policy does not name gets 404 for the model, its content and its deletion, and does not see it listed', async () => {
    const created = (await upload({ name: 'private' }, [{ content: mnist() }])).json();
    const other = t.principal('hospital-b').token;
    for (const [method, url] of [
      ['GET', `/v1/models/${created.id}`],
      ['GET', `/v1/models/${created.id}/content`],
      ['DELETE', `/v1/models/${created.id}`],
    ] as const) {
      const res = await t.app.inject({ method, url, headers: t.auth(other) });
      assert.equal(res.statusCode, 404, `${method} ${url}`);
    }
    const list = await t.app.inject({ url: '/v1/models', headers: t.auth(other) });
    assert.deepEqual(list.json().items, []);
    // The admin is no exception: it manages principals, not other parties' models.
    const admin = await t.app.inject({ url: `/v1/models/${created.id}/content`, headers: t.auth() });
    assert.equal(admin.statusCode, 404);
  });

  test('a reader its policy names sees the model (without its policy), but only the owner downloads or deletes it', async () => {
    const reader = t.principal('reader');
    const created = (await upload({ name: 'shared', policy: JSON.stringify({ readers: [reader.id] }) }, [{ content: mnist() }])).json();
    assert.deepEqual(created.policy, { readers: [reader.id] });
    const { policy: _policy, ...view } = created;
    assert.deepEqual((await t.app.inject({ url: `/v1/models/${created.id}`, headers: t.auth(reader.token) })).json(), view);
    assert.deepEqual((await t.app.inject({ url: '/v1/models', headers: t.auth(reader.token) })).json().items, [view]);
    for (const [method, url] of [
      ['GET', `/v1/models/${created.id}/content`],
      ['DELETE', `/v1/models/${created.id}`],
    ] as const) {
      const res = await t.app.inject({ method, url, headers: t.auth(reader.token) });
      assert.equal(res.statusCode, 403, `${method} ${url}`);
      assert.equal(res.json().rule, 'model.owner');
    }
    assert.equal(
      (await t.app.inject({ url: `/v1/models/${created.id}`, headers: t.auth(member) })).statusCode,
      200,
      'the refused deletion deleted nothing',
    );
  });

  test('the owner deletes a model: row and sealed file are gone', async () => {
    const created = (await upload({ name: 'to-delete' }, [{ content: mnist() }])).json();
    const file = path.join(t.blobs.blobsDir, 'model', `${created.id}.sealed`);
    assert.ok(fs.existsSync(file));
    const res = await t.app.inject({ method: 'DELETE', url: `/v1/models/${created.id}`, headers: t.auth(member) });
    assert.equal(res.statusCode, 204);
    assert.equal(fs.existsSync(file), false);
    assert.equal((await t.app.inject({ url: `/v1/models/${created.id}`, headers: t.auth(member) })).statusCode, 404);
    assert.equal((await t.app.inject({ method: 'DELETE', url: `/v1/models/${created.id}`, headers: t.auth(member) })).statusCode, 404);
  });
});

describe('refused models leave nothing behind', () => {
  test('garbage bytes get 422 unprocessable-model', async () => {
    const before = modelRows();
    await assertRefused(
      await upload({ name: 'x' }, [{ content: Buffer.from('this is not a zip archive at all') }]),
      422,
      'unprocessable-model',
    );
    assert.equal(modelRows(), before);
  });

  test('an empty file gets 422', async () => {
    await assertRefused(await upload({ name: 'x' }, [{ content: Buffer.alloc(0) }]), 422, 'unprocessable-model');
  });

  test('a truncated TorchScript file gets 422', async () => {
    const bytes = mnist();
    await assertRefused(
      await upload({ name: 'x' }, [{ content: bytes.subarray(0, Math.floor(bytes.length / 2)) }]),
      422,
      'unprocessable-model',
    );
  });

  test('a trace made under no_grad is refused naming its inference-only operator', async () => {
    const bytes = fs.readFileSync(testdataPath('torchscript', 'torch-1.13', 'transformer.trace_nograd.pt'));
    await assertRefused(
      await upload({ name: 'x' }, [{ content: bytes }]),
      422,
      'unprocessable-model',
      /aten::_transformer_encoder_layer_fwd/,
    );
  });

  test('a forward that prints or saves files is refused naming the operator', async () => {
    const fixtures = await hostileModels();
    await assertRefused(
      await upload({ name: 'x' }, [{ content: fixtures.bytes('forward_print.pt') }]),
      422,
      'unprocessable-model',
      /prim::Print/,
    );
    await assertRefused(
      await upload({ name: 'x' }, [{ content: fixtures.bytes('forward_save.pt') }]),
      422,
      'unprocessable-model',
      /aten::save/,
    );
  });

  test('a forward that mixes samples or lets a record steer it is refused with 422 naming the operator and its line; nothing is kept', async () => {
    const dir = await batchModels();
    const rows = modelRows();
    const cases: [string, RegExp][] = [
      ['item_slice.script.pt', /aten::select at code\/__torch__\.py:\d+ picks one sample of the batch dimension/],
      ['mean_center.trace.pt', /aten::mean at code\/.*\.py:\d+ mean reduces over the batch dimension/],
      ['batch_size_branch.script.pt', /prim::If at code\/__torch__\.py:\d+ branches on the number of samples/],
      ['text_of_batch.script.pt', /aten::str at code\/__torch__\.py:\d+ turns a tensor computed from the samples/],
      ['mix_only_in_training.script.pt', /aten::mean at code\/__torch__\.py:\d+/],
    ];
    for (const [file, detail] of cases) {
      const problem = await assertRefused(
        await upload({ name: 'x' }, [{ content: fs.readFileSync(path.join(dir, file)) }]),
        422,
        'unprocessable-model',
        detail,
      );
      assert.ok(
        problem.problems.some((p: { rule: string }) => p.rule === 'batch-mixing' || p.rule === 'data-control-flow'),
        `${file}: ${JSON.stringify(problem.problems)}`,
      );
    }
    assert.equal(modelRows(), rows);
  });

  test('a forward with public shape checks and views that keep the batch is accepted, with the input ranks it was shown at', async () => {
    const res = await upload({ name: 'checks' }, [{ content: fs.readFileSync(path.join(await batchModels(), 'shape_checks.script.pt')) }]);
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual(res.json().check.inputRanks, ['2', '3', '4', '5']);
    const cnn = await upload({ name: 'cnn' }, [{ content: mnist() }]);
    assert.deepEqual(cnn.json().check.inputRanks, ['4'], 'conv2d needs [n, C, H, W]');
  });

  test('a __setstate__ that writes a file is refused before anything loads it: the file never appears', async () => {
    const fixtures = await hostileModels();
    await assertRefused(
      await upload({ name: 'x' }, [{ content: fixtures.bytes('setstate_writes_file.pt') }]),
      422,
      'unprocessable-model',
      /__setstate__/,
    );
    assert.equal(fs.existsSync(fixtures.marker), false);
  });

  test('a missing file part is a 400 naming /file', async () => {
    const problem = await assertRefused(await upload({ name: 'x' }, []), 400, 'validation-failed');
    assert.deepEqual(
      problem.errors.map((e: { pointer: string }) => e.pointer),
      ['/file'],
    );
  });

  test('two file parts are a 400', async () => {
    await assertRefused(
      await upload({ name: 'x' }, [{ content: mnist() }, { content: mnist(), field: 'second' }]),
      400,
      'validation-failed',
      /second file part/,
    );
  });

  test('a missing name and an unknown field are both named', async () => {
    const problem = await assertRefused(await upload({ nmae: 'typo' }, [{ content: mnist() }]), 400, 'validation-failed');
    assert.deepEqual(problem.errors.map((e: { pointer: string }) => e.pointer).sort(), ['/name', '/nmae']);
  });

  test('an upload above the size limit gets 413', async () => {
    await assertRefused(await upload({ name: 'x' }, [{ content: Buffer.alloc(9 * 1024 * 1024, 1) }]), 413, 'payload-too-large');
  });

  test('a JSON body instead of a form gets 415', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/v1/models', payload: { name: 'x' }, headers: t.auth(member) });
    await assertRefused(res, 415, 'unsupported-media-type');
  });

  test('no token, no upload: 401', async () => {
    const form = await multipartForm({ name: 'x' }, [{ content: mnist() }]);
    const res = await t.app.inject({ method: 'POST', url: '/v1/models', payload: form.payload, headers: form.headers });
    await assertRefused(res, 401, 'unauthorized');
  });
});

describe('the reference TorchScript files', () => {
  test('are accepted or refused as testdata/torchscript/README.md says, in both PyTorch versions', async () => {
    for (const producer of ['torch-1.13', 'torch-2.6']) {
      const dir = testdataPath('torchscript', producer);
      for (const name of fs
        .readdirSync(dir)
        .filter((n) => n.endsWith('.pt'))
        .sort()) {
        const res = await upload({ name }, [{ content: fs.readFileSync(path.join(dir, name)) }]);
        if (name === 'transformer.trace_nograd.pt') {
          assert.equal(res.statusCode, 422, `${producer}/${name}`);
          assert.match(res.json().detail, /aten::_transformer_encoder_layer_fwd/);
        } else if (name === 'dataset_bastion.script.pt') {
          // A dataset, not a model: it has no forward to train.
          assert.equal(res.statusCode, 422, `${producer}/${name}`);
          assert.match(res.json().detail, /no forward/);
        } else {
          assert.equal(res.statusCode, 201, `${producer}/${name}: ${res.body}`);
        }
      }
    }
  });
});

describe('a damaged sealed file', () => {
  test('with a damaged header answers 500 sealed-blob-corrupt and no bytes', async () => {
    const created = (await upload({ name: 'to-damage' }, [{ content: mnist() }])).json();
    const file = path.join(t.blobs.blobsDir, 'model', `${created.id}.sealed`);
    const sealed = fs.readFileSync(file);
    sealed[60]! ^= 0xff; // inside the kind field of the header
    fs.writeFileSync(file, sealed);
    const res = await t.app.inject({ url: `/v1/models/${created.id}/content`, headers: t.auth(member) });
    assert.equal(res.statusCode, 500);
    assert.equal(res.json().type, 'urn:bastion:problem:sealed-blob-corrupt');
  });

  test('with a damaged segment never returns wrong bytes: the download stops before the bad segment', async () => {
    const bytes = fs.readFileSync(testdataPath('torchscript', 'torch-1.13', 'transformer.script.pt'));
    const created = (await upload({ name: 'to-damage-later' }, [{ content: bytes }])).json();
    const file = path.join(t.blobs.blobsDir, 'model', `${created.id}.sealed`);
    const sealed = fs.readFileSync(file);
    sealed[sealed.length - 100]! ^= 0x01; // in the last segment
    fs.writeFileSync(file, sealed);
    // Over a real connection: the server aborts the response at the bad segment.
    const address = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const { received, completed } = await new Promise<{ received: Buffer; completed: boolean }>((resolve) => {
      const parts: Buffer[] = [];
      http.get(`${address}/v1/models/${created.id}/content`, { headers: t.auth(member) }, (response) => {
        assert.equal(response.statusCode, 200);
        response.on('data', (chunk: Buffer) => parts.push(chunk));
        response.on('end', () => resolve({ received: Buffer.concat(parts), completed: response.complete }));
        response.on('error', () => resolve({ received: Buffer.concat(parts), completed: false }));
      });
    });
    assert.equal(completed, false, 'the response is not complete');
    assert.ok(received.length < bytes.length, 'the download is cut short');
    assert.deepEqual(received, bytes.subarray(0, received.length), 'what arrived is a genuine prefix');
  });
});
