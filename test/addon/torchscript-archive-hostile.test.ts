// The TorchScript archive check on archives that PyTorch itself writes (test/fixtures/hostile_models.py, built
// with the system's Python): what only misbehaves in forward passes the check, and code that runs at load time
// is refused without running it. The checks on crafted archives are in test/unit/torchscript-archive.test.ts.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { ArchiveProblem, checkTorchscriptArchive } from '../../src/artifacts/formats/torchscript-archive.js';
import { assertRefused, refusedModel } from '../helpers/archive-refusal.js';
import { hostileModels } from '../helpers/torch-fixtures.js';
import { buildZip, readZip } from '../helpers/zip.js';

test('the hostile fixtures that only misbehave in forward pass this check (they are caught after loading)', async () => {
  const models = await hostileModels();
  for (const name of [
    'forward_print.pt',
    'forward_save.pt',
    'forward_warn.pt',
    'batchnorm.pt',
    'frozen.pt',
    'buffer_mutation.pt',
    'setattr.pt',
    'good_mlp.pt',
  ]) {
    const report = await checkTorchscriptArchive(models.bytes(name), { kind: 'model' });
    assert.equal(report.topFolder, name.replace(/\.pt$/, ''));
  }
  // frozen.pt keeps its weights as graph constants: storages under constants/.
  const frozen = await checkTorchscriptArchive(models.bytes('frozen.pt'), { kind: 'model' });
  assert.ok(
    frozen.storages.length > 0 &&
      frozen.storages.every((storage) => storage.pickle === 'constants.pkl' && storage.record.startsWith('frozen/constants/')),
  );
});

test('refuses a debug pickle that holds anything but source ranges', async () => {
  const models = await hostileModels();
  const archive = models.bytes('good_mlp.pt');
  const entries = readZip(archive);
  const dataPickle = entries.find((entry) => entry.name === 'good_mlp/data.pkl')!.data;
  const debug = entries.find((entry) => entry.name.endsWith('.debug_pkl'))!;
  const rebuilt = buildZip(entries.map(({ name, data }) => ({ name, data: name === debug.name ? dataPickle : data })));
  await assertRefused(
    rebuilt,
    refusedModel(
      ArchiveProblem.FORBIDDEN_GLOBAL,
      /___torch_mangle_\d+\.py\.debug_pkl: the global collections\.OrderedDict is not allowed in a TorchScript debug pickle/,
    ),
  );
});

test('refuses setstate_writes_file.pt, and loading nothing means the marker file is never written', async () => {
  const models = await hostileModels();
  assert.equal(existsSync(models.marker), false);
  await assertRefused(
    models.bytes('setstate_writes_file.pt'),
    refusedModel(
      ArchiveProblem.LOAD_TIME_CODE,
      /setstate_writes_file\/code\/__torch__\.py: the code defines or calls __setstate__, which torch::jit::load runs while loading/,
    ),
  );
  assert.equal(existsSync(models.marker), false, 'the check must not run the archive');
});
