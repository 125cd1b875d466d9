// The CLI's plain progress lines (what a pipe or CI log shows of a training) and how it builds a
// training request from --request and flags.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { eventLine, formatDuration, LineThrottle, progressMode } from '../../src/cli/progress.js';
import { trainingRequest } from '../../src/cli/trainings.js';
import type { Training, TrainingEvent, TrainingEventType } from '../../src/client/events.js';

const id = '01a24b0a-d516-70ea-a2f3-419986865ce1';

function training(overrides: Partial<Training> = {}): Training {
  return {
    id,
    status: 'running',
    step: 40,
    totalSteps: 160,
    epoch: 5,
    epsilonPlanned: 2,
    epsilonSpent: 0.81234,
    samplesPerSec: 1523.7,
    etaSeconds: 75,
    checkpointStep: 40,
    metrics: [],
    error: null,
    resultModelId: null,
    ...overrides,
  } as Training;
}

const event = (type: TrainingEventType, overrides: Partial<Training> = {}): TrainingEvent => ({ type, training: training(overrides) });

test('a progress line says status, step of total, epoch, ε spent of planned, throughput and ETA', () => {
  assert.equal(eventLine(event('progress')), `training ${id} running: step 40/160 (epoch 5), ε 0.812 of 2, 1520 samples/s, ETA 1m15s`);
  assert.equal(
    eventLine(event('state', { status: 'queued', step: 0, epoch: 0, epsilonSpent: null, samplesPerSec: null, etaSeconds: null })),
    `training ${id} queued: step 0/160 (epoch 0), ε 0 of 2`,
  );
  assert.equal(
    eventLine(event('progress', { epsilonPlanned: null, epsilonSpent: null })),
    `training ${id} running: step 40/160 (epoch 5), non-private, 1520 samples/s, ETA 1m15s`,
  );
});

test('the end lines: succeeded names the trained model, failed and cancelled the error', () => {
  const done = event('completed', { status: 'succeeded', step: 160, epoch: 20, epsilonSpent: 2, resultModelId: 'm-1' });
  assert.equal(eventLine(done), `training ${id} succeeded: step 160/160 (epoch 20), ε 2 of 2; trained model m-1`);
  assert.equal(
    eventLine(event('failed', { status: 'failed', error: 'the model raised: boom' })),
    `training ${id} failed at step 40/160 (epoch 5): the model raised: boom`,
  );
  assert.equal(eventLine(event('cancelled', { status: 'cancelled' })), `training ${id} cancelled at step 40/160 (epoch 5)`);
  const metric = event('metric', { metrics: [{ epoch: 5, step: 40, steps: 8, meanLoss: Math.LN2, noiseStd: 0.0123 }] });
  assert.equal(eventLine(metric), `training ${id} epoch 5: mean training loss 0.6931 (noise std 0.0123)`);
});

test('the throttle prints every state change and at most one progress line per interval', () => {
  let now = 0;
  const throttle = new LineThrottle(1000, () => now);
  const printed = (type: TrainingEventType) => throttle.shouldPrint(event(type));
  assert.equal(printed('state'), true);
  assert.equal(printed('progress'), false, 'a state line just said as much');
  now = 1000;
  assert.equal(printed('progress'), true);
  now = 1500;
  assert.equal(printed('progress'), false);
  assert.equal(printed('checkpoint'), true);
  assert.equal(printed('metric'), true);
  assert.equal(printed('completed'), true);
  now = 2000;
  assert.equal(printed('progress'), true);
});

test('durations read as people say them', () => {
  assert.deepEqual(
    [formatDuration(0), formatDuration(59.6), formatDuration(75), formatDuration(3600 * 2 + 60 * 5)],
    ['0s', '1m00s', '1m15s', '2h05m'],
  );
});

test('a bar on a terminal stdout, lines to a pipe; with --json stdout carries only the result', () => {
  const tty = { isTTY: true } as NodeJS.WriteStream;
  const pipe = { isTTY: false } as NodeJS.WriteStream;
  assert.equal(progressMode(false, tty, pipe).mode, 'bar');
  assert.equal(progressMode(false, pipe, tty).mode, 'lines');
  assert.deepEqual(progressMode(true, tty, tty), { mode: 'bar', stream: tty });
  assert.equal(progressMode(true, pipe, pipe).mode, 'none');
});

test('a training request from a file, with flags overriding its fields and filling the common ones', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-request-')), 'request.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      modelId: 'm-file',
      datasetIds: ['d-file'],
      epochs: 1,
      optimizer: { type: 'adam', learningRate: 0.001, betas: [0.9, 0.99] },
      privacy: { accountant: 'rdp', targetEpsilon: 1, maxGradNorm: 2 },
    }),
  );
  try {
    const merged = await trainingRequest({
      request: file,
      dataset: ['d1', 'd2'],
      epochs: 3,
      batchSize: 64,
      lr: 0.01,
      epsilon: 4,
      loss: 'cross_entropy',
    });
    assert.deepEqual(merged, {
      modelId: 'm-file',
      datasetIds: ['d1', 'd2'],
      epochs: 3,
      expectedBatchSize: 64,
      loss: 'cross_entropy',
      optimizer: { type: 'adam', learningRate: 0.01, betas: [0.9, 0.99] },
      privacy: { accountant: 'rdp', targetEpsilon: 4, maxGradNorm: 2 },
    });
    const nonPrivate = await trainingRequest({ request: file, nonPrivate: true });
    assert.equal(nonPrivate.private, false);
    assert.equal('privacy' in nonPrivate, false);
  } finally {
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  }
  // Flags alone: sgd unless told; what neither gives is left for the server to name.
  assert.deepEqual(await trainingRequest({ model: 'm', dataset: ['d'], lr: 0.1, maxGradNorm: 1 }), {
    modelId: 'm',
    datasetIds: ['d'],
    optimizer: { type: 'sgd', learningRate: 0.1 },
    privacy: { maxGradNorm: 1 },
  });
});

test('a request file that is not a JSON object is refused naming it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bastion-request-'));
  try {
    fs.writeFileSync(path.join(dir, 'bad.json'), '{"epochs": ');
    await assert.rejects(trainingRequest({ request: path.join(dir, 'bad.json') }), /Expected JSON for --request .*bad\.json/);
    fs.writeFileSync(path.join(dir, 'list.json'), '[1]');
    await assert.rejects(trainingRequest({ request: path.join(dir, 'list.json') }), /Expected a JSON object for --request .*list\.json/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
