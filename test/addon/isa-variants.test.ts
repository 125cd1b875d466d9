// The addon builds its hot loops once per instruction set (addon/src/core/dp/grad_sample/cpu_isa.h): a
// function named ...Avx512 or ...Avx2 carries a target attribute and inlines the loop's template, so that
// the loop compiles for those instructions. Where GCC declines to inline, the variant is a jump to the
// template's baseline build, and the wider machine runs the baseline loop with no error and no test
// failing on numbers (the embedding rule's norms did so, unseen, until a profile showed it). This test
// reads the built addon's symbol table: every variant must hold its own code.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/testdata.js';

const addon = path.join(repoRoot, 'build', 'Release', 'bastion.node');

/** A variant that only calls or jumps elsewhere is a few instructions; the smallest real one is hundreds of bytes. */
const minimumBytes = 64;

/** Defined functions whose (demangled) name ends in Avx512 or Avx2, with their sizes; cold clones left out. */
function variants(): { name: string; bytes: number }[] {
  const nm = spawnSync('nm', ['--demangle', '--print-size', '--defined-only', addon], { encoding: 'utf8' });
  assert.equal(nm.status, 0, nm.stderr);
  const found: { name: string; bytes: number }[] = [];
  for (const line of nm.stdout.split('\n')) {
    const match = /^[0-9a-f]+ ([0-9a-f]+) [tT] (.+)$/.exec(line);
    if (!match || match[2]!.includes('[clone')) continue;
    const name = /(?:^|::)(\w+(?:Avx512|Avx2))\(/.exec(match[2]!)?.[1];
    if (name) found.push({ name, bytes: Number.parseInt(match[1]!, 16) });
  }
  return found;
}

const x64 = process.arch === 'x64';

test(`every instruction-set variant of a native loop compiles the loop itself, not a jump to the baseline build${x64 ? '' : ' (x86-64 only: no variants elsewhere)'}`, {
  skip: !x64,
}, () => {
  assert.ok(fs.existsSync(addon), `${addon} is built`);
  const all = variants();
  // The variants this test exists for must be found at all (a renamed one would pass vacuously).
  for (const name of ['SampleNormsAvx512', 'SampleNormsAvx2', 'AddRowsAvx512', 'AddScaledAvx512', 'SamplesAvx512']) {
    assert.ok(
      all.some((v) => v.name === name),
      `${name} is in the addon's symbol table`,
    );
  }
  const stubs = all.filter((v) => v.bytes < minimumBytes).map((v) => `${v.name} (${v.bytes} bytes)`);
  assert.deepEqual(stubs, [], 'variants too small to hold their loop');
});
