// inspectModel against every TorchScript file in ../shared/testdata/torchscript, with real PyTorch
// (the system's /usr/bin/python3, torch 1.13) as the reference for names, shapes and dtypes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { inspectModel, type ModelInspection } from '../../src/native.js';
import {
  modelName,
  numel,
  readSafetensorsHeader,
  testdataPath,
  torchscriptFiles,
  torchscriptProducers,
} from '../helpers/testdata.js';

interface PythonTensor {
  name: string;
  shape: number[];
  dtype: string;
  requiresGrad?: boolean;
}
type PythonView =
  | { error: string }
  | { methods: string[]; parameters: PythonTensor[]; buffers: PythonTensor[]; training: boolean };

// What torch.jit.load sees in each file; files torch 1.13 refuses carry the first line of its error.
const PYTHON_REFERENCE = `
import json, sys, warnings
warnings.filterwarnings("ignore")
import torch

def tensors(named, with_grad):
    out = []
    for name, t in named:
        entry = {"name": name, "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
        if with_grad:
            entry["requiresGrad"] = t.requires_grad
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
    assert.deepEqual(torchscriptFiles(producer).map((file) => path.basename(file)), listed);
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
      assert.ok(inspection.parameters.every((p) => p.requiresGrad && p.dtype === 'float32'));
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
      { name: 'samples_0', shape: [100, 1, 28, 28], dtype: 'float32', requiresGrad: false },
      { name: 'labels', shape: [100], dtype: 'int64', requiresGrad: false },
      { name: 'privacy_limit', shape: [1], dtype: 'float32', requiresGrad: false },
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
