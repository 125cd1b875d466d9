// Benchmark: DP-SGD accuracy and wall time through the HTTP API only, on real data. Fashion-MNIST
// (Debian's dataset-fashion-mnist) is converted to a safetensors dataset, uploaded with curl together
// with the end-to-end CNN of Tramèr & Boneh (ICLR 2021), trained at ε = 3, δ = 1e-5 with their recipe
// (Poisson sampling, expected batch 2048, momentum 0.9, C = 0.1) over a shorter schedule: 20 epochs
// at lr 8 (theirs: 40 epochs at lr 4; `--epochs 40 --learning-rate 4`), then the trained model is
// downloaded and evaluated on the 10,000 test images with PyTorch (the test set is not private to the
// benchmark's principal). The wall time runs from the training request to the end of its event stream.
// Prints a table, or with --json one object {"accuracy", "epsilon", "delta", "wallSeconds", "samplesPerSec"}.
//
//   npm run bench:accuracy [-- --epochs 20] [--learning-rate 8] [--accountant rdp|pld] [--json]
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { encodeSafetensorsHeader } from '../../src/artifacts/formats/safetensors.js';
import { DEFAULT_ACCOUNTANT } from '../../src/vocabulary.js';
import { startBenchServer } from './server.js';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    epochs: { type: 'string', default: '20' },
    'learning-rate': { type: 'string', default: '8' },
    accountant: { type: 'string', default: DEFAULT_ACCOUNTANT },
    json: { type: 'boolean', default: false },
  },
});
const DATA = '/usr/share/datasets/fashion-mnist';
if (!fs.existsSync(path.join(DATA, 'train-images-idx3-ubyte.gz'))) {
  console.error(`bench:accuracy needs Fashion-MNIST in ${DATA}: apt-get install dataset-fashion-mnist`);
  process.exit(1);
}

function readIdx(file: string): { shape: number[]; bytes: Buffer } {
  const data = gunzipSync(fs.readFileSync(file));
  const dims = data[3]!;
  const shape = Array.from({ length: dims }, (_, i) => data.readUInt32BE(4 + 4 * i));
  return { shape, bytes: data.subarray(4 + 4 * dims) };
}

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-bench-accuracy-'));
  const images = readIdx(path.join(DATA, 'train-images-idx3-ubyte.gz'));
  const labels = readIdx(path.join(DATA, 'train-labels-idx1-ubyte.gz'));
  const n = images.shape[0]!;
  const pixels = new Float32Array(images.bytes.length);
  for (let i = 0; i < pixels.length; i += 1) pixels[i] = images.bytes[i]! / 255;
  const classes = BigInt64Array.from(labels.bytes, (b) => BigInt(b));
  const datasetFile = path.join(work, 'fashion-mnist-train.safetensors');
  fs.writeFileSync(
    datasetFile,
    Buffer.concat([
      encodeSafetensorsHeader([
        { name: 'inputs', dtype: 'F32', shape: [n, 1, 28, 28] },
        { name: 'labels', dtype: 'I64', shape: [n] },
      ]),
      Buffer.from(pixels.buffer),
      Buffer.from(classes.buffer),
    ]),
  );
  const modelFile = path.join(work, 'tramer-boneh-cnn.pt');
  execFileSync('/usr/bin/python3', [path.join(here, 'fashion_mnist_model.py'), 'write', modelFile]);

  const dataDir = path.join(work, 'var');
  const {
    process: server,
    url,
    token,
    ca,
  } = await startBenchServer(dataDir, ['--pool-size', '1', '--torch-threads', String(os.availableParallelism())]);
  const curl = async (args: string[]) => {
    const { stdout } = await run('curl', ['-sS', '--fail-with-body', '--cacert', ca, '-H', `Authorization: Bearer ${token}`, ...args], {
      maxBuffer: 64 << 20,
    });
    return stdout;
  };
  try {
    const dataset = JSON.parse(
      await curl([
        '-F',
        `file=@${datasetFile}`,
        '-F',
        'name=fashion-mnist-train',
        '-F',
        'privacyLimit=3',
        '-F',
        'delta=1e-5',
        `${url}/v1/datasets`,
      ]),
    ) as { id: string };
    const model = JSON.parse(await curl(['-F', `file=@${modelFile}`, '-F', 'name=tramer-boneh-cnn', `${url}/v1/models`])) as { id: string };
    const request = {
      modelId: model.id,
      datasetIds: [dataset.id],
      epochs: Number(values.epochs),
      expectedBatchSize: 2048,
      maxPhysicalBatchSize: 1024,
      loss: 'cross_entropy',
      optimizer: { type: 'sgd', learningRate: Number(values['learning-rate']), momentum: 0.9 },
      privacy: { targetEpsilon: 3, maxGradNorm: 0.1, clipping: 'flat', accountant: values.accountant },
      metricsEpsilon: 0,
    };
    const started = performance.now();
    const job = JSON.parse(await curl(['-H', 'content-type: application/json', '-d', JSON.stringify(request), `${url}/v1/trainings`])) as {
      id: string;
    };
    // Follow the training's events (one curl, no polling to compete with the training for the CPUs);
    // the stream ends with the training.
    await curl(['-N', `${url}/v1/trainings/${job.id}/events`]);
    const state = JSON.parse(await curl([`${url}/v1/trainings/${job.id}`])) as {
      status: string;
      resultModelId?: string;
      error?: string;
    };
    const wallSeconds = (performance.now() - started) / 1000;
    if (state.status !== 'succeeded') throw new Error(`training ${state.status}: ${state.error ?? ''}`);
    const trained = path.join(work, 'trained.pt');
    await curl(['-o', trained, `${url}/v1/models/${state.resultModelId}/content`]);
    const evaluation = JSON.parse(
      execFileSync(
        '/usr/bin/python3',
        [
          path.join(here, 'fashion_mnist_model.py'),
          'evaluate',
          trained,
          path.join(DATA, 't10k-images-idx3-ubyte.gz'),
          path.join(DATA, 't10k-labels-idx1-ubyte.gz'),
        ],
        { encoding: 'utf8' },
      ),
    ) as { accuracy: number };
    const privacy = JSON.parse(await curl([`${url}/v1/datasets/${dataset.id}/privacy`])) as { epsilonSpent: number; delta: number };
    const result = {
      accuracy: evaluation.accuracy,
      epsilon: privacy.epsilonSpent,
      delta: privacy.delta,
      wallSeconds,
      samplesPerSec: (Number(values.epochs) * n) / wallSeconds,
    };
    if (values.json) {
      console.log(JSON.stringify(result));
    } else {
      console.log(
        `Fashion-MNIST, Tramèr–Boneh CNN, ${values.epochs} epochs, lr ${values['learning-rate']}, expected batch 2048, C = 0.1, ` +
          `through the HTTP API (${os.availableParallelism()} cores)`,
      );
      console.log('| test accuracy | ε spent | δ | wall time (s) | samples/s |');
      console.log('|---|---|---|---|---|');
      console.log(
        `| ${(result.accuracy * 100).toFixed(2)}% | ${result.epsilon.toFixed(3)} | ${result.delta} | ${result.wallSeconds.toFixed(0)} | ${result.samplesPerSec.toFixed(0)} |`,
      );
    }
  } finally {
    server.kill('SIGTERM');
    fs.rmSync(work, { recursive: true, force: true });
  }
}

await main();
