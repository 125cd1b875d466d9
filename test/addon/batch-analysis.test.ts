// The batch-independence and data-to-control-flow analysis (src/artifacts/batch-analysis.ts) on real
// TorchScript graphs: the hostile models of test/fixtures/batch_models.py are refused with the
// operator and its source line named, the reference models of the shared test data and the
// legitimate controls are accepted at the rank of their real inputs, and the rule table covers the
// operator allowlist.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import {
  acceptedRanks,
  analyseBatchIndependence,
  batchRules,
  problemsForRanks,
  publicOnlyOperators,
  scalarRules,
} from '../../src/artifacts/batch-analysis.js';
import { allowedOperators, decideModelPolicy, PolicyRule } from '../../src/artifacts/operator-policy.js';
import { inspectModel } from '../../src/native.js';
import { perSampleFixtures } from '../helpers/per-sample-fixtures.js';
import { modelName, readSafetensorsHeader, testdataPath, torchscriptFiles, torchscriptProducers } from '../helpers/testdata.js';
import { batchModels } from '../helpers/torch-fixtures.js';

async function graphOf(name: string): Promise<string> {
  const dir = await batchModels();
  return inspectModel(readFileSync(path.join(dir, name))).forward!.graph;
}

/** What each hostile model must be refused for (at inputs [n, 4]: rank 2): the operator and the words. */
const hostile: Record<string, { operator: string; words: RegExp }> = {
  'item_slice.script.pt': { operator: 'aten::select', words: /picks one sample of the batch dimension/ },
  'raise_on_threshold.script.pt': { operator: 'aten::any', words: /reduces over the batch dimension/ },
  'branch_on_value.script.pt': { operator: 'aten::max', words: /reduces over the batch dimension/ },
  'mean_center.script.pt': { operator: 'aten::mean', words: /mean reduces over the batch dimension/ },
  'mean_center.trace.pt': { operator: 'aten::mean', words: /mean reduces over the batch dimension/ },
  'sum_broadcast.script.pt': { operator: 'aten::sum', words: /sum reduces over the batch dimension/ },
  'transpose_contract.script.pt': { operator: 'aten::mm', words: /contracts the batch dimension/ },
  'flip_batch.script.pt': { operator: 'aten::flip', words: /flips the batch dimension/ },
  'sort_batch.script.pt': { operator: 'aten::sort', words: /along the batch dimension/ },
  'reshape_mix.script.pt': { operator: 'aten::reshape', words: /reshapes a batched tensor/ },
  'reshape_mix.trace.pt': { operator: 'aten::reshape', words: /reshapes a batched tensor/ },
  'softmax_over_batch.script.pt': { operator: 'aten::softmax', words: /along the batch dimension/ },
  'cat_batch.script.pt': { operator: 'aten::slice', words: /slices the batch dimension/ },
  'batch_size_value.script.pt': { operator: 'aten::mul', words: /number of samples/ },
  'batch_size_value.trace.pt': { operator: 'aten::mul', words: /number of samples/ },
  'batch_size_branch.script.pt': { operator: 'prim::If', words: /branches on the number of samples/ },
  'loop_over_samples.script.pt': { operator: 'prim::Loop', words: /loops a number of times that depends on the number of samples/ },
  'unbatched.script.pt': { operator: 'aten::select', words: /picks one sample/ },
  'mix_only_in_training.script.pt': { operator: 'aten::mean', words: /mean reduces over the batch dimension/ },
  'text_of_batch.script.pt': { operator: 'aten::str', words: /turns a tensor computed from the samples into a Python number/ },
  'in_place_leak.script.pt': { operator: 'aten::add_', words: /writes values computed from the samples, in place/ },
  'recurrence_over_batch.script.pt': { operator: 'aten::lstm', words: /runs a recurrence over a tensor whose batch is not dim 1 of 3/ },
  'unbatched_recurrence.script.pt': { operator: 'aten::gru', words: /would carry state from one sample to the next/ },
  'packed_recurrence.script.pt': { operator: 'aten::lstm', words: /packed sequence, whose layout interleaves the samples/ },
  // `is` on list elements decides false only for distinct new tensors: these are the same object.
  'same_object_branch.script.pt': { operator: 'aten::mean', words: /mean reduces over the batch dimension/ },
  'element_is_appended.script.pt': { operator: 'aten::mean', words: /mean reduces over the batch dimension/ },
};

for (const [name, expected] of Object.entries(hostile)) {
  test(`refuses ${name} at every input rank, naming ${expected.operator} and its source line`, async () => {
    const analysis = analyseBatchIndependence(await graphOf(name));
    assert.deepEqual(acceptedRanks(analysis), []);
    const problems = problemsForRanks(analysis, [2]);
    const hit = problems.find((p) => p.operator === expected.operator);
    assert.ok(hit, `expected a problem naming ${expected.operator}, got: ${problems.map((p) => p.message).join(' | ')}`);
    assert.match(hit.message, expected.words);
    assert.match(hit.location, /^code\/.*\.py:\d+$/);
    assert.ok(hit.message.includes(hit.location));
  });
}

test('the item() attack (a record value as an output length) is refused as a policy problem before any training', async () => {
  const inspection = inspectModel(readFileSync(path.join(await batchModels(), 'item_slice.script.pt')));
  const decision = decideModelPolicy(inspection);
  assert.deepEqual(decision.inputRanks, []);
  assert.ok(decision.problems.some((p) => p.rule === PolicyRule.BATCH_MIXING && p.operator === 'aten::select'));
  assert.ok(decision.problems.every((p) => /analysed with an input of rank \d/.test(p.message) || p.rule !== PolicyRule.BATCH_MIXING));
});

test('cross-attention passes the whole model policy: nn.TransformerDecoderLayer and time-first nn.MultiheadAttention with distinct query, key and value', async () => {
  // `query is key` is false for two tensors the graph creates, so the analysis follows the
  // cross-attention branch alone; the unrolled `[x.transpose(1, 0) for x in (query, key)]` keeps its items.
  const fixtures = await perSampleFixtures();
  for (const name of ['decoder_layer', 'cross_attention']) {
    const decision = decideModelPolicy(inspectModel(fixtures.get(name)!.files.script!));
    assert.deepEqual(decision.problems, [], name);
    assert.ok(decision.inputRanks.includes('2'), `${name}: ${decision.inputRanks.join(' ')}`);
  }
});

test('nn.LSTM and nn.GRU pass the whole model policy (allowlist and batch analysis) at the rank of their real input', async () => {
  const inspection = inspectModel(readFileSync(path.join(await batchModels(), 'recurrent_controls.script.pt')));
  const decision = decideModelPolicy(inspection);
  assert.deepEqual(decision.problems, []);
  assert.ok(decision.inputRanks.includes('2'));
});

test('accepts public shape checks, views that keep the batch, per-sample reductions, equal batch sizes and recurrences over time', async () => {
  for (const name of [
    'shape_checks.script.pt',
    'shape_checks.trace.pt',
    'two_tensors_same_batch.script.pt',
    'recurrent_controls.script.pt',
  ]) {
    const analysis = analyseBatchIndependence(await graphOf(name));
    assert.deepEqual(problemsForRanks(analysis, [2]), [], name);
  }
});

for (const producer of torchscriptProducers) {
  test(`accepts every reference model written by ${producer} at the rank of its real input`, () => {
    for (const file of torchscriptFiles(producer).filter((f) => !path.basename(f).startsWith('dataset'))) {
      const io = readSafetensorsHeader(testdataPath('torchscript', producer, `${modelName(file)}.io.safetensors`));
      const rank = io.input!.shape.length;
      const analysis = analyseBatchIndependence(inspectModel(readFileSync(file)).forward!.graph);
      assert.deepEqual(problemsForRanks(analysis, [rank]), [], `${path.basename(file)} at rank ${rank}`);
    }
  });
}

test('the reference CNN is refused at rank 3, where conv2d would read the batch as channels', () => {
  const file = testdataPath('torchscript', 'torch-1.13', 'mnist_cnn.script.pt');
  const problems = problemsForRanks(analyseBatchIndependence(inspectModel(readFileSync(file)).forward!.graph), [3]);
  assert.ok(
    problems.some((p) => p.operator === 'aten::conv2d' && /unbatched sample/.test(p.message)),
    problems.map((p) => p.message).join(' | '),
  );
});

test('every allowed operator has a batch rule, a scalar rule, or is public-only (refused on batched input)', () => {
  const missing = Object.keys(allowedOperators).filter(
    (kind) => !(kind in batchRules) && !(kind in scalarRules) && !publicOnlyOperators.has(kind),
  );
  assert.deepEqual(missing, []);
  const stray = Object.keys(batchRules).filter((kind) => !(kind in allowedOperators));
  assert.deepEqual(stray, []);
});

test('a graph that reduces over every dimension of its input is refused; one that keeps rows is accepted', () => {
  // Hand-built graphs: forward(self, x) -> x.sum() and forward(self, x) -> x * 2.
  const sum = {
    in: [
      [0, 'M'],
      [1, 'Tensor'],
    ],
    nodes: [
      { k: 'prim::Constant', in: [], out: [[2, 'NoneType']], value: null },
      { k: 'aten::sum', in: [1, 2], out: [[3, 'Tensor']], loc: 'code/m.py:3' },
    ],
    out: [3],
  };
  assert.match(
    problemsForRanks(analyseBatchIndependence(JSON.stringify(sum)), [2])[0]!.message,
    /^aten::sum at code\/m\.py:3 sum reduces over the batch dimension/,
  );
  const scale = {
    in: [
      [0, 'M'],
      [1, 'Tensor'],
    ],
    nodes: [
      { k: 'prim::Constant', in: [], out: [[2, 'int']], value: 2 },
      { k: 'aten::mul', in: [1, 2], out: [[3, 'Tensor']] },
    ],
    out: [3],
  };
  assert.deepEqual(acceptedRanks(analyseBatchIndependence(JSON.stringify(scale))), ['1', '2', '3', '4', '5']);
});

test('a value whose batch dimension the analysis lost track of is refused where it is used, even when no rule said why', () => {
  // forward(self, x) -> relu(x.squeeze(1)): with x [B, F] and F unknown, the rank of the result is unknown.
  const graph = {
    in: [
      [0, 'M'],
      [1, 'Tensor'],
    ],
    nodes: [
      { k: 'prim::Constant', in: [], out: [[2, 'int']], value: 1 },
      { k: 'aten::squeeze', in: [1, 2], out: [[3, 'Tensor']], loc: 'code/m.py:3' },
      { k: 'aten::relu', in: [3], out: [[4, 'Tensor']], loc: 'code/m.py:4' },
    ],
    out: [4],
  };
  const problems = problemsForRanks(analyseBatchIndependence(JSON.stringify(graph)), [2]);
  assert.deepEqual(
    problems.map((p) => [p.operator, p.location]),
    [['aten::relu', 'code/m.py:4']],
  );
  assert.match(problems[0]!.message, /lost track of the batch dimension/);
});
