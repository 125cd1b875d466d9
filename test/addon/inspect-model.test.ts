// inspectModel against every TorchScript file in test/data/torchscript, with real PyTorch
// (the system's /usr/bin/python3, torch 1.13) as the reference for names, shapes and dtypes; the
// graph analysis (where operators run, writes to module state, tensor constants, BatchNorm mode)
// against the hostile fixtures and small models built here with PyTorch; extractTensors against the
// dataset manifests.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { extractTensors, inspectModel, type ModelInspection, NativeError } from '../../src/native.js';
import { dtypeSizeBytes } from '../../src/vocabulary.js';
import { prng } from '../helpers/prng.js';
import { modelName, numel, readSafetensorsHeader, testdataPath, torchscriptFiles, torchscriptProducers } from '../helpers/testdata.js';
import { hostileModels } from '../helpers/torch-fixtures.js';
import { readStoredZip, storedZip } from '../helpers/zip.js';

interface PythonTensor {
  name: string;
  shape: number[];
  dtype: string;
  requiresGrad?: boolean;
  contiguous?: boolean;
}
type PythonView = { error: string } | { methods: string[]; parameters: PythonTensor[]; buffers: PythonTensor[]; training: boolean };

// What torch.jit.load sees in each file; files torch 1.13 refuses carry the first line of its error.
const PYTHON_REFERENCE = `
import json, sys, warnings
warnings.filterwarnings("ignore")
import torch

# The addon names dtypes as safetensors does (src/vocabulary.ts).
DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
          torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}

def tensors(named, with_grad):
    out = []
    for name, t in named:
        entry = {"name": name, "shape": list(t.shape), "dtype": DTYPES.get(t.dtype, str(t.dtype))}
        if with_grad:
            entry["requiresGrad"] = t.requires_grad
            entry["contiguous"] = t.is_contiguous()
        out.append(entry)
    return out

result = {}
for file in sys.argv[1:]:
    try:
        m = torch.jit.load(file, map_location="cpu")
    except Exception as e:
        result[file] = {"error": str(e).strip().splitlines()[0]}
        continue
    result[file] = {
        "methods": sorted(m._c._method_names()),
        "parameters": tensors(m.named_parameters(), True),
        "buffers": tensors(m.named_buffers(), False),
        "training": m.training,
    }
print(json.dumps(result))
`;

const allFiles = torchscriptProducers.flatMap((producer) => torchscriptFiles(producer));

let pythonViews: Record<string, PythonView> | undefined;
function pythonView(file: string): PythonView {
  if (!pythonViews) {
    const run = spawnSync('/usr/bin/python3', ['-c', PYTHON_REFERENCE, ...allFiles], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    assert.equal(run.status, 0, `python3 reference failed: ${run.stderr}`);
    pythonViews = JSON.parse(run.stdout) as Record<string, PythonView>;
  }
  const view = pythonViews[file];
  assert.ok(view, `no Python view of ${file}`);
  return view;
}

const inspections = new Map<string, ModelInspection>();
function inspect(file: string): ModelInspection {
  let inspection = inspections.get(file);
  if (!inspection) {
    inspection = inspectModel(readFileSync(file));
    inspections.set(file, inspection);
  }
  return inspection;
}

function relative(file: string): string {
  return `${path.basename(path.dirname(file))}/${path.basename(file)}`;
}

function operatorCounts(inspection: ModelInspection): Map<string, number> {
  assert.ok(inspection.forward, 'forward is null');
  return new Map(inspection.forward.operators.map((op) => [op.kind, op.count]));
}

test('the test data folders hold exactly the files their manifests list', () => {
  for (const producer of torchscriptProducers) {
    const manifest = JSON.parse(readFileSync(testdataPath('torchscript', producer, 'manifest.json'), 'utf8')) as {
      files: { file: string }[];
    };
    const listed = manifest.files.map((entry) => entry.file).sort();
    assert.deepEqual(
      torchscriptFiles(producer).map((file) => path.basename(file)),
      listed,
    );
  }
  assert.ok(allFiles.length >= 24, `expected the 12 files of each producer, found ${allFiles.length}`);
});

for (const file of allFiles) {
  const name = relative(file);

  test(`inspectModel reports the parameters, buffers and methods PyTorch reports for ${name}`, () => {
    const inspection = inspect(file);
    let reference = pythonView(file);
    if ('error' in reference) {
      // torch 1.13 cannot load PyTorch 2.x transformer files (the addon registers the missing
      // operator); the same model written by torch 1.13 has the same names and shapes.
      assert.match(reference.error, /Unknown builtin op: aten::scaled_dot_product_attention/);
      reference = pythonView(path.join(testdataPath('torchscript', 'torch-1.13'), path.basename(file)));
      assert.ok(!('error' in reference), reference.toString());
    }
    assert.deepEqual(inspection.parameters, reference.parameters);
    assert.deepEqual(inspection.buffers, reference.buffers);
    assert.deepEqual(inspection.methods, reference.methods);
    assert.equal(inspection.training, reference.training);
  });

  const io = path.join(path.dirname(file), `${modelName(file)}.io.safetensors`);
  if (existsSync(io)) {
    test(`inspectModel counts as many parameters in ${name} as param_grads holds`, () => {
      const inspection = inspect(file);
      const paramGrads = readSafetensorsHeader(io).param_grads;
      assert.ok(paramGrads, `${io} has no param_grads`);
      const total = inspection.parameters.reduce((sum, p) => sum + numel(p.shape), 0);
      assert.equal(total, numel(paramGrads.shape));
      assert.ok(inspection.parameters.every((p) => p.requiresGrad && p.dtype === 'F32'));
      assert.equal(inspection.training, false);
      assert.ok(inspection.forward, 'a model file has a forward');
      assert.equal(inspection.forward.inputs, 1);
      const kinds = inspection.forward.operators.map((op) => op.kind);
      assert.deepEqual(kinds, [...kinds].sort(), 'operators are sorted by kind');
      assert.equal(new Set(kinds).size, kinds.length, 'each kind appears once');
      assert.ok(inspection.forward.operators.every((op) => Number.isInteger(op.count) && op.count > 0));
    });
  }
}

for (const producer of torchscriptProducers) {
  test(`inspectModel reads ${producer}/dataset_bastion.script.pt as a module without forward holding the dataset`, () => {
    const inspection = inspect(testdataPath('torchscript', producer, 'dataset_bastion.script.pt'));
    assert.equal(inspection.forward, null);
    assert.deepEqual(inspection.methods, []);
    assert.deepEqual(inspection.buffers, []);
    assert.deepEqual(inspection.parameters, [
      { name: 'samples_0', shape: [100, 1, 28, 28], dtype: 'F32', requiresGrad: false, contiguous: true },
      { name: 'labels', shape: [100], dtype: 'I64', requiresGrad: false, contiguous: true },
      { name: 'privacy_limit', shape: [1], dtype: 'F32', requiresGrad: false, contiguous: true },
    ]);
  });

  test(`inspectModel lists two conv2d and two linear in the inlined forward of ${producer}/mnist_cnn.script.pt`, () => {
    const ops = operatorCounts(inspect(testdataPath('torchscript', producer, 'mnist_cnn.script.pt')));
    assert.equal(ops.get('aten::conv2d'), 2);
    assert.equal(ops.get('aten::linear'), 2);
    assert.equal(ops.get('prim::CallMethod'), undefined, 'the graph is inlined');
  });

  test(`inspectModel lists aten::_convolution for the convolutions of ${producer}/mnist_cnn.trace.pt`, () => {
    const ops = operatorCounts(inspect(testdataPath('torchscript', producer, 'mnist_cnn.trace.pt')));
    assert.equal(ops.get('aten::_convolution'), 2);
    assert.equal(ops.get('aten::linear'), 2);
    assert.equal(ops.get('aten::conv2d'), undefined);
  });

  test(`inspectModel lists the fused inference kernel of ${producer}/transformer.trace_nograd.pt`, () => {
    const ops = operatorCounts(inspect(testdataPath('torchscript', producer, 'transformer.trace_nograd.pt')));
    assert.equal(ops.get('aten::_transformer_encoder_layer_fwd'), 1);
  });
}

for (const kind of ['script', 'trace']) {
  test(`inspectModel loads torch-2.6/transformer.${kind}.pt, which calls aten::scaled_dot_product_attention`, () => {
    const ops = operatorCounts(inspect(testdataPath('torchscript', 'torch-2.6', `transformer.${kind}.pt`)));
    assert.ok((ops.get('aten::scaled_dot_product_attention') ?? 0) >= 1);
    const older = operatorCounts(inspect(testdataPath('torchscript', 'torch-1.13', `transformer.${kind}.pt`)));
    assert.equal(older.get('aten::scaled_dot_product_attention'), undefined);
  });
}

test('inspectModel counts nodes inside prim::If blocks of the inlined forward', () => {
  // nn.MultiheadAttention's scripted forward raises only inside if-branches.
  const ops = operatorCounts(inspect(testdataPath('torchscript', 'torch-1.13', 'transformer.script.pt')));
  assert.ok((ops.get('prim::If') ?? 0) > 0);
  assert.ok((ops.get('prim::RaiseException') ?? 0) > 0);
});

test('inspectModel gives the same answer for a Buffer, a Uint8Array and a view at an offset', () => {
  const file = testdataPath('torchscript', 'torch-1.13', 'mlp.script.pt');
  const bytes = readFileSync(file);
  const padded = new Uint8Array(bytes.length + 13);
  padded.set(bytes, 7);
  const view = padded.subarray(7, 7 + bytes.length);
  const plain = new Uint8Array(bytes);
  const expected = inspectModel(bytes);
  assert.deepEqual(inspectModel(view), expected);
  assert.deepEqual(inspectModel(plain), expected);
  plain.fill(0); // the addon kept no reference to the bytes
  assert.deepEqual(inspectModel(bytes), expected);
});

// --- Graph analysis -----------------------------------------------------------------------------

function forwardOf(inspection: ModelInspection): NonNullable<ModelInspection['forward']> {
  assert.ok(inspection.forward, 'forward is null');
  return inspection.forward;
}

function use(inspection: ModelInspection, kind: string) {
  const found = forwardOf(inspection).operators.find((op) => op.kind === kind);
  assert.ok(found, `${kind} is not in the forward graph`);
  return found;
}

for (const file of allFiles.filter((f) => !f.endsWith('dataset_bastion.script.pt'))) {
  const name = relative(file);
  test(`inspectModel reports where each operator of ${name} runs, and no state writes, BatchNorm or frozen weights`, () => {
    const forward = forwardOf(inspect(file));
    for (const op of forward.operators) {
      assert.ok(
        Number.isInteger(op.unconditional) && op.unconditional >= 0 && op.unconditional <= op.count,
        `${op.kind}: ${op.unconditional} of ${op.count}`,
      );
      assert.ok(
        Number.isInteger(op.inTraining) && op.inTraining >= 0 && op.inTraining <= op.count,
        `${op.kind}: ${op.inTraining} in training`,
      );
      assert.ok(op.locations.length <= 3, `${op.kind} has ${op.locations.length} locations`);
      assert.equal(new Set(op.locations).size, op.locations.length, `${op.kind} repeats a location`);
      for (const location of op.locations) assert.match(location, /^code\/__torch__[\w./-]*\.py:\d+$/);
    }
    assert.deepEqual(forward.mutations, []);
    assert.equal(forward.batchNormTraining, false);
    assert.ok(forward.tensorConstants.elements <= 2, `${forward.tensorConstants.elements} constant elements`);
  });
}

for (const producer of torchscriptProducers) {
  test(`inspectModel locates the convolutions of ${producer}/mnist_cnn.script.pt in the archive's conv.py, on the top-level block`, () => {
    const conv = use(inspect(testdataPath('torchscript', producer, 'mnist_cnn.script.pt')), 'aten::conv2d');
    assert.equal(conv.unconditional, 2);
    assert.ok(conv.locations.length >= 1);
    const convPy = /^code\/__torch__\/torch\/nn\/modules\/conv(\/___torch_mangle_\d+)?\.py:\d+$/;
    assert.ok(
      conv.locations.every((l) => convPy.test(l)),
      conv.locations.join(', '),
    );
  });

  test(`inspectModel finds the fused kernels and raises of ${producer}/transformer.script.pt only inside branches`, () => {
    const inspection = inspect(testdataPath('torchscript', producer, 'transformer.script.pt'));
    for (const kind of [
      'aten::_transformer_encoder_layer_fwd',
      'aten::_native_multi_head_attention',
      'prim::RaiseException',
      'aten::warn',
    ]) {
      const op = use(inspection, kind);
      assert.ok(op.count > 0);
      assert.equal(op.unconditional, 0, `${kind} outside a branch`);
    }
  });

  test(`inspectModel finds the fused kernel of ${producer}/transformer.trace_nograd.pt on the top-level block`, () => {
    const op = use(inspect(testdataPath('torchscript', producer, 'transformer.trace_nograd.pt')), 'aten::_transformer_encoder_layer_fwd');
    assert.deepEqual([op.count, op.unconditional], [1, 1]);
  });
}

test('inspectModel counts the scalar tensor constants a trace bakes into torch-1.13/transformer.trace.pt', () => {
  assert.deepEqual(forwardOf(inspect(testdataPath('torchscript', 'torch-1.13', 'transformer.trace.pt'))).tensorConstants, {
    count: 2,
    elements: 2,
  });
});

test('inspectModel reports the buffer writes of the buffer_mutation fixture by name, the in-place add and the SetAttr', async () => {
  const { bytes } = await hostileModels();
  const forward = forwardOf(inspectModel(bytes('buffer_mutation.pt')));
  assert.deepEqual(
    forward.mutations.map((m) => [m.kind, m.attribute]),
    [
      ['aten::add_', 'counter'],
      ['prim::SetAttr', 'counter'],
      ['aten::add_', 'running'],
    ],
  );
  assert.match(forward.mutations[0]!.location, /^code\/__torch__\.py:\d+$/);
});

test('inspectModel reports the attribute assignment of the setattr fixture', async (t) => {
  const models = await hostileModels();
  let bytes: Buffer;
  try {
    bytes = models.bytes('setattr.pt');
  } catch {
    t.skip('setattr.pt was not generated by this PyTorch');
    return;
  }
  assert.deepEqual(
    forwardOf(inspectModel(bytes)).mutations.map((m) => [m.kind, m.attribute]),
    [['prim::SetAttr', 'calls']],
  );
});

test('inspectModel reports BatchNorm in training mode, and its num_batches_tracked write, for the batchnorm fixture', async () => {
  const { bytes } = await hostileModels();
  const forward = forwardOf(inspectModel(bytes('batchnorm.pt')));
  assert.equal(forward.batchNormTraining, true);
  assert.deepEqual(
    forward.mutations.map((m) => [m.kind, m.attribute]),
    [['aten::add_', 'bn.num_batches_tracked']],
  );
});

test('inspectModel reports the weights of the frozen fixture as tensor constants and no parameters', async () => {
  const { bytes } = await hostileModels();
  const inspection = inspectModel(bytes('frozen.pt'));
  assert.deepEqual(inspection.parameters, []);
  // Linear(4, 3) and Linear(3, 2): 12 + 3 + 6 + 2 elements.
  assert.deepEqual(forwardOf(inspection).tensorConstants, { count: 4, elements: 23 });
});

test('inspectModel reports no mutation and no BatchNorm for the good_mlp fixture', async () => {
  const { bytes } = await hostileModels();
  const forward = forwardOf(inspectModel(bytes('good_mlp.pt')));
  assert.deepEqual(forward.mutations, []);
  assert.equal(forward.batchNormTraining, false);
  assert.deepEqual(forward.tensorConstants, { count: 0, elements: 0 });
});

// Small models for the corners of the analysis, built once with the system's PyTorch (from a file:
// torch.jit.script reads the classes' source).
const ANALYSIS_CASES = `
import os, sys, torch, torch.nn as nn
from torch import Tensor
out = sys.argv[1]
def save(name, m): torch.jit.save(m, os.path.join(out, name))

class InplaceActivation(nn.Module):
    def __init__(self):
        super().__init__(); self.conv = nn.Conv2d(1, 2, 3); self.act = nn.ReLU(inplace=True)
    def forward(self, x: Tensor) -> Tensor:
        x.add_(1)
        return self.act(self.conv(x)).relu_()
save('inplace_activation.pt', torch.jit.script(InplaceActivation()))

class ViewWrite(nn.Module):
    def __init__(self):
        super().__init__(); self.fc = nn.Linear(2, 2); self.register_buffer('buf', torch.zeros(2, 2))
    def forward(self, x: Tensor) -> Tensor:
        self.buf.view(-1).add_(x.sum())
        return self.fc(x)
save('view_write.pt', torch.jit.script(ViewWrite()))

class ListWrite(nn.Module):
    def __init__(self):
        super().__init__(); self.fc = nn.Linear(2, 2); self.register_buffer('buf', torch.zeros(2))
    def forward(self, x: Tensor) -> Tensor:
        held = [x, self.buf]
        held[1].copy_(x[0])
        return self.fc(x)
save('list_write.pt', torch.jit.script(ListWrite()))

class ParameterWrite(nn.Module):
    def __init__(self):
        super().__init__(); self.fc = nn.Linear(2, 2)
    def forward(self, x: Tensor) -> Tensor:
        self.fc.weight.detach().mul_(0.5)
        return self.fc(x)
save('parameter_write.pt', torch.jit.script(ParameterWrite()))

class LoopCarriedWrite(nn.Module):
    def __init__(self):
        super().__init__(); self.fc = nn.Linear(2, 2); self.register_buffer('buf', torch.zeros(2))
    def forward(self, x: Tensor) -> Tensor:
        t = x
        for i in range(2):
            if i == 1:
                t.add_(1.0)
            t = self.buf
        return self.fc(x)
save('loop_carried_write.pt', torch.jit.script(LoopCarriedWrite()))

bn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 2))
example = torch.randn(3, 1, 4, 4)
bn.eval(); save('batchnorm_eval.trace.pt', torch.jit.trace(bn, example))
bn.train(); save('batchnorm_train.trace.pt', torch.jit.trace(bn, example))
save('instancenorm.pt', torch.jit.script(nn.Sequential(nn.Conv2d(1, 2, 3), nn.InstanceNorm2d(2))))
save('instancenorm_running.pt', torch.jit.script(nn.Sequential(nn.Conv2d(1, 2, 3), nn.InstanceNorm2d(2, track_running_stats=True))))

class TensorConstant(nn.Module):
    def __init__(self):
        super().__init__(); self.fc = nn.Linear(2000, 2); self.offset = torch.ones(2000)
    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x + self.offset)
save('tensor_constant.trace.pt', torch.jit.trace(TensorConstant(), torch.randn(1, 2000)))

@torch.jit.interface
class Layer(nn.Module):
    def forward(self, input: Tensor) -> Tensor:
        pass
class InterfaceCall(nn.Module):
    sub: Layer
    def __init__(self):
        super().__init__(); self.sub = nn.Linear(2, 2)
    def forward(self, x: Tensor) -> Tensor:
        return self.sub.forward(x)
save('interface_call.pt', torch.jit.script(InterfaceCall()))
`;

let analysisDir: string | undefined;
function analysisCase(name: string): ModelInspection {
  if (!analysisDir) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bastion-analysis-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const script = path.join(dir, 'analysis_cases.py');
    writeFileSync(script, ANALYSIS_CASES);
    const run = spawnSync('/usr/bin/python3', [script, dir], { encoding: 'utf8' });
    assert.equal(run.status, 0, `building the analysis cases failed: ${run.stderr}`);
    analysisDir = dir;
  }
  return inspectModel(readFileSync(path.join(analysisDir, name)));
}

function mutationsOf(name: string): string[][] {
  return forwardOf(analysisCase(name)).mutations.map((m) => [m.kind, m.attribute]);
}

test('inspectModel does not report in-place operators on the input and on activations (relu_, ReLU(inplace=True)) as state writes', () => {
  assert.deepEqual(mutationsOf('inplace_activation.pt'), []);
});

test('inspectModel reports a write through a view of a buffer as a write to the buffer', () => {
  assert.deepEqual(mutationsOf('view_write.pt'), [['aten::add_', 'buf']]);
});

test('inspectModel reports a write to a buffer taken back out of a list', () => {
  assert.deepEqual(mutationsOf('list_write.pt'), [['aten::copy_', 'buf']]);
});

test('inspectModel reports a write through a detached parameter as a write to the parameter', () => {
  assert.deepEqual(mutationsOf('parameter_write.pt'), [['aten::mul_', 'fc.weight']]);
});

test('inspectModel reports a write to a buffer carried into a later loop iteration', () => {
  assert.deepEqual(mutationsOf('loop_carried_write.pt'), [['aten::add_', 'buf']]);
});

test('inspectModel tells a BatchNorm traced in eval mode (training constant false) from one traced in training mode', () => {
  assert.equal(forwardOf(analysisCase('batchnorm_eval.trace.pt')).batchNormTraining, false);
  assert.deepEqual(mutationsOf('batchnorm_eval.trace.pt'), []);
  assert.equal(forwardOf(analysisCase('batchnorm_train.trace.pt')).batchNormTraining, true);
});

test('inspectModel reports InstanceNorm as using batch statistics only when it tracks running statistics', () => {
  assert.equal(forwardOf(analysisCase('instancenorm.pt')).batchNormTraining, false);
  assert.equal(forwardOf(analysisCase('instancenorm_running.pt')).batchNormTraining, true);
});

test('inspectModel counts a tensor attribute a trace baked into the graph as a tensor constant', () => {
  assert.deepEqual(forwardOf(analysisCase('tensor_constant.trace.pt')).tensorConstants, { count: 1, elements: 2000 });
});

test('inspectModel leaves a call through a module interface as prim::CallMethod after inlining', () => {
  const call = use(analysisCase('interface_call.pt'), 'prim::CallMethod');
  assert.equal(call.unconditional, 1);
});

// --- Tensors whose metadata lies about their storage ---------------------------------------------

/** mnist_cnn.script.pt with one record replaced (the archive stays a valid, stored zip). */
function mnistWith(change: (name: string, data: Buffer) => Buffer): Buffer {
  const entries = readStoredZip(readFileSync(testdataPath('torchscript', 'torch-1.13', 'mnist_cnn.script.pt')));
  return storedZip(entries.map(({ name, data }) => ({ name, data: change(name, data) })));
}

test('inspectModel refuses a tensor whose storage record is shorter than its pickle claims (heap over-read)', () => {
  const bytes = mnistWith((name, data) => (name.endsWith('/data/0') ? data.subarray(0, 8) : data));
  assert.throws(
    () => inspectModel(bytes),
    (error: unknown) =>
      error instanceof NativeError &&
      error.code === 'MODEL_LOAD_FAILED' &&
      /Tensor 'net\.0\.weight' has a storage of 4096 bytes but the archive holds only \d+ bytes/.test(error.message),
  );
});

test('inspectModel refuses a tensor whose sizes address more than its storage holds', () => {
  // net.0.weight is [16, 1, 8, 8] (BININT1 16, 1, 8, 8 in data.pkl); claim 64 filters.
  const sizes = Buffer.from([0x4b, 16, 0x4b, 1, 0x4b, 8, 0x4b, 8]);
  const bytes = mnistWith((name, data) => {
    if (!name.endsWith('/data.pkl')) return data;
    const at = data.indexOf(sizes);
    assert.ok(at >= 0, 'the size tuple of net.0.weight is in data.pkl');
    const edited = Buffer.from(data);
    edited[at + 1] = 64;
    return edited;
  });
  assert.throws(
    () => inspectModel(bytes),
    (error: unknown) =>
      error instanceof NativeError &&
      error.code === 'MODEL_LOAD_FAILED' &&
      /Tensor 'net\.0\.weight' addresses more bytes than its storage holds/.test(error.message),
  );
});

// --- extractTensors ---------------------------------------------------------------------------

interface ManifestTensor {
  dtype: string;
  shape: number[];
  sha256: string;
}

// The manifests name dtypes as PyTorch prints them; the addon as safetensors does.
const torchDtypes: Record<string, string> = { F32: 'torch.float32', I64: 'torch.int64' };

for (const producer of torchscriptProducers) {
  test(`extractTensors returns the tensors of ${producer}/dataset_bastion.script.pt with the manifest's names, dtypes, shapes and bytes`, () => {
    const manifest = JSON.parse(readFileSync(testdataPath('torchscript', producer, 'manifest.json'), 'utf8')) as {
      files: { file: string; tensors?: Record<string, ManifestTensor> }[];
    };
    const expected = manifest.files.find((f) => f.file === 'dataset_bastion.script.pt')?.tensors;
    assert.ok(expected, 'the manifest describes the dataset tensors');
    const tensors = extractTensors(readFileSync(testdataPath('torchscript', producer, 'dataset_bastion.script.pt')), 1024 ** 3);
    assert.deepEqual(
      tensors.map((t) => ({
        name: t.name,
        dtype: torchDtypes[t.dtype],
        shape: t.shape,
        sha256: createHash('sha256').update(t.data).digest('hex'),
      })),
      Object.entries(expected).map(([name, entry]) => ({ name, ...entry })),
    );
    assert.ok(tensors.every((t) => Buffer.isBuffer(t.data)));
  });
}

test('extractTensors returns parameters, then buffers, with the bytes PyTorch holds', async () => {
  const { file, bytes } = await hostileModels();
  const reference = spawnSync(
    '/usr/bin/python3',
    [
      '-c',
      `import sys, json, hashlib, torch
m = torch.jit.load(sys.argv[1])
named = list(m.named_parameters()) + list(m.named_buffers())
print(json.dumps([[n, hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()] for n, t in named]))`,
      file('batchnorm.pt'),
    ],
    { encoding: 'utf8' },
  );
  assert.equal(reference.status, 0, reference.stderr);
  const tensors = extractTensors(bytes('batchnorm.pt'), 1024 ** 2);
  assert.deepEqual(
    tensors.map((t) => [t.name, createHash('sha256').update(t.data).digest('hex')]),
    JSON.parse(reference.stdout),
  );
  assert.equal(tensors.find((t) => t.name === 'bn.num_batches_tracked')?.dtype, 'I64');
});

test('extractTensors accepts tensors of exactly maxBytes and refuses one byte less before copying anything', () => {
  const bytes = readFileSync(testdataPath('torchscript', 'torch-1.13', 'dataset_bastion.script.pt'));
  const total = 100 * 28 * 28 * 4 + 100 * 8 + 4;
  assert.equal(
    extractTensors(bytes, total).reduce((sum, t) => sum + t.data.length, 0),
    total,
  );
  assert.throws(
    () => extractTensors(bytes, total - 1),
    (error: unknown) =>
      error instanceof NativeError &&
      error.code === 'MODEL_LOAD_FAILED' &&
      error.message === `The archive's tensors hold more than the limit of ${total - 1} bytes`,
  );
});

test('extractTensors refuses a maxBytes that is not an integer between 0 and 2^53 - 1', () => {
  const bytes = readFileSync(testdataPath('torchscript', 'torch-1.13', 'dataset_bastion.script.pt'));
  for (const [value, received] of [
    [-1, '-1'],
    [1.5, '1.5'],
    [Number.NaN, 'NaN'],
    ['10', 'string'],
    [undefined, 'undefined'],
  ] as const) {
    assert.throws(
      () => extractTensors(bytes, value as number),
      (error: unknown) =>
        error instanceof NativeError &&
        error.code === 'INVALID_ARGUMENT' &&
        error.message === `Expected integer between 0 and 9007199254740991 for maxBytes but received ${received}`,
      String(value),
    );
  }
});

test('extractTensors refuses bytes that are not a TorchScript archive with MODEL_LOAD_FAILED', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bastion-extract-'));
  try {
    const garbage = path.join(dir, 'garbage.pt');
    writeFileSync(garbage, Buffer.from('not a zip archive at all'));
    assert.throws(
      () => extractTensors(readFileSync(garbage), 1024),
      (error: unknown) =>
        error instanceof NativeError && error.code === 'MODEL_LOAD_FAILED' && /^Cannot load the TorchScript archive: /.test(error.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const elementBytes: Record<string, number> = dtypeSizeBytes;

// Only damage the addon's own checks are for: records shorter than their storage, and sizes that
// address more than it. Flipping arbitrary pickle opcodes can crash libtorch's unpickler itself (a
// stack underflow, found here); the TypeScript pre-check refuses those, and the sandbox contains them.
test('extractTensors on 60 damaged copies of the dataset (records cut, sizes changed) returns consistent tensors or a NativeError', () => {
  const original = readStoredZip(readFileSync(testdataPath('torchscript', 'torch-1.13', 'dataset_bastion.script.pt')));
  const sizes = Buffer.from([0x4b, 100, 0x4b, 1, 0x4b, 28, 0x4b, 28]); // samples_0: BININT1 100, 1, 28, 28
  const random = prng(1913);
  const outcomes = { ok: 0, refused: 0 };
  for (let i = 0; i < 60; i += 1) {
    const entries = original.map(({ name, data }) => ({ name, data: Buffer.from(data) }));
    if (i % 2 === 0) {
      const records = entries.filter((e) => /\/data\/\d+$/.test(e.name));
      const record = records[Math.floor(random() * records.length)]!;
      record.data = record.data.subarray(0, Math.floor(random() * record.data.length));
    } else {
      const pickle = entries.find((e) => e.name.endsWith('/data.pkl'))!;
      const at = pickle.data.indexOf(sizes);
      assert.ok(at >= 0, 'the size tuple of samples_0 is in data.pkl');
      pickle.data[at + 1 + 2 * Math.floor(random() * 4)] = Math.floor(random() * 256);
    }
    try {
      for (const tensor of extractTensors(storedZip(entries), 16 * 1024 ** 2)) {
        const numel = tensor.shape.reduce((a, b) => a * b, 1);
        assert.equal(
          tensor.data.length,
          numel * (elementBytes[tensor.dtype] ?? Number.NaN),
          `${tensor.name} ${tensor.dtype} ${tensor.shape.join('x')}`,
        );
      }
      outcomes.ok += 1;
    } catch (error) {
      assert.ok(error instanceof NativeError, `not a NativeError: ${String(error)}`);
      assert.equal(error.code, 'MODEL_LOAD_FAILED', error.message);
      assert.match(error.message, /^Cannot load the TorchScript archive: Tensor '\w+' (has a storage of|addresses more bytes)/);
      outcomes.refused += 1;
    }
  }
  assert.ok(outcomes.refused > 0 && outcomes.ok > 0, JSON.stringify(outcomes));
});
