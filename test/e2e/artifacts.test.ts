// Artifacts end to end against the compiled server with real curl: every dataset format and a model
// uploaded, listed, downloaded byte-identical and deleted; a client that disconnects mid-upload and a
// server killed mid-upload leave no partial artifact behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeSafetensors } from '../../src/artifacts/formats/safetensors.js';
import { curlFor } from '../helpers/curl.js';
import { type ServerProcess, startServerProcess } from '../helpers/server.js';
import { testdataPath } from '../helpers/testdata.js';

describe('artifacts over HTTPS with curl', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-e2e-artifacts-'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-e2e-files-'));
  const stagingDir = path.join(dataDir, 'blobs', 'staging');
  let server: ServerProcess;

  const start = async () => {
    server = await startServerProcess(['--port', '0', '--pool-size', '1'], { BASTION_DATA_DIR: dataDir });
    curl.refreshToken();
  };
  const curl = curlFor(dataDir);
  const curlArgs = curl.args;

  // Resolves once `dir` satisfies `ready`, woken by file-system events rather than polling.
  function whenDir(dir: string, ready: (names: string[]) => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (ready(fs.readdirSync(dir))) {
          watcher.close();
          resolve();
        }
      };
      const watcher = fs.watch(dir, check);
      check();
    });
  }

  const bigFile = path.join(work, 'big.safetensors');
  before(async () => {
    await start();
    const n = 200_000;
    fs.writeFileSync(
      bigFile,
      encodeSafetensors([
        { name: 'inputs', dtype: 'F32', shape: [n, 16], data: new Uint8Array(n * 16 * 4) },
        { name: 'labels', dtype: 'I64', shape: [n], data: new Uint8Array(n * 8) },
      ]),
    );
  });
  after(async () => {
    await server?.stop();
  });

  test('curl uploads a CSV, a safetensors and a TorchScript dataset, and a model; lists, downloads and deletes them', async () => {
    const csvFile = path.join(work, 'patients.csv');
    fs.writeFileSync(csvFile, `age,weight,label\n${Array.from({ length: 30 }, (_, i) => `${30 + i},${60 + i},${i % 2}`).join('\n')}\n`);
    const csv = await curl(['-F', `file=@${csvFile}`, '-F', 'name=patients', '-F', 'privacyLimit=3', `${server.url}/v1/datasets`]);
    assert.equal(csv.status, 201, csv.body);
    assert.equal(JSON.parse(csv.body).sampleCount, 30);

    const safetensors = await curl([
      '-F',
      `data=@${bigFile}`,
      '-F',
      'name=big',
      '-F',
      'privacyLimit=8',
      '-F',
      'delta=1e-7',
      `${server.url}/v1/datasets`,
    ]);
    assert.equal(safetensors.status, 201, safetensors.body);
    assert.equal(JSON.parse(safetensors.body).format, 'safetensors');

    const torchscript = await curl([
      '-F',
      `file=@${testdataPath('torchscript', 'torch-1.13', 'dataset_bastion.script.pt')}`,
      '-F',
      'name=bastion-layout',
      `${server.url}/v1/datasets`,
    ]);
    assert.equal(torchscript.status, 201, torchscript.body);
    assert.equal(JSON.parse(torchscript.body).privacyLimit, 6);

    const modelFile = testdataPath('torchscript', 'torch-1.13', 'text_cls_v1000.trace.pt');
    const model = await curl([
      '-F',
      `file=@${modelFile}`,
      '-F',
      'name=text-classifier',
      '-F',
      'description=traced',
      `${server.url}/v1/models`,
    ]);
    assert.equal(model.status, 201, model.body);
    const modelId = JSON.parse(model.body).id as string;

    const datasets = JSON.parse((await curl([`${server.url}/v1/datasets`])).body).items as { name: string }[];
    assert.deepEqual(
      datasets.map((d) => d.name),
      ['patients', 'big', 'bastion-layout'],
    );
    const models = JSON.parse((await curl([`${server.url}/v1/models`])).body).items as { id: string }[];
    assert.deepEqual(
      models.map((m) => m.id),
      [modelId],
    );

    const downloaded = path.join(work, 'downloaded.pt');
    const download = await curl(['-o', downloaded, `${server.url}/v1/models/${modelId}/content`]);
    assert.equal(download.status, 200);
    assert.deepEqual(fs.readFileSync(downloaded), fs.readFileSync(modelFile));

    for (const id of [modelId]) assert.equal((await curl(['-X', 'DELETE', `${server.url}/v1/models/${id}`])).status, 204);
    for (const id of [csv, safetensors, torchscript].map((r) => JSON.parse(r.body).id as string)) {
      assert.equal((await curl(['-X', 'DELETE', `${server.url}/v1/datasets/${id}`])).status, 204);
    }
    assert.deepEqual(JSON.parse((await curl([`${server.url}/v1/datasets`])).body).items, []);
  });

  test('a client that disconnects mid-upload leaves no staged file and no dataset', async () => {
    const client = spawn(
      'curl',
      [
        ...curlArgs(['--limit-rate', '1M', '-F', `file=@${bigFile}`, '-F', 'name=abandoned', '-F', 'privacyLimit=1']),
        `${server.url}/v1/datasets`,
      ],
      { stdio: 'ignore' },
    );
    await whenDir(stagingDir, (names) => names.length > 0);
    client.kill('SIGKILL');
    await whenDir(stagingDir, (names) => names.length === 0);
    assert.deepEqual(JSON.parse((await curl([`${server.url}/v1/datasets`])).body).items, []);
  });

  test('a server killed mid-upload restarts with no partial artifact', async () => {
    const client = spawn(
      'curl',
      [
        ...curlArgs(['--limit-rate', '1M', '-F', `file=@${bigFile}`, '-F', 'name=interrupted', '-F', 'privacyLimit=1']),
        `${server.url}/v1/datasets`,
      ],
      { stdio: 'ignore' },
    );
    await whenDir(stagingDir, (names) => names.length > 0);
    server.child.kill('SIGKILL');
    await server.stop();
    client.kill('SIGKILL');
    assert.ok(fs.readdirSync(stagingDir).length > 0, 'the kill left a partial staged file');
    await start();
    assert.deepEqual(fs.readdirSync(stagingDir), []);
    assert.deepEqual(JSON.parse((await curl([`${server.url}/v1/datasets`])).body).items, []);
    for (const kind of ['dataset', 'dataset-tensors']) assert.deepEqual(fs.readdirSync(path.join(dataDir, 'blobs', kind)), []);
  });
});
