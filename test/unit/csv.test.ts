import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type ByteSink, CANONICAL_FORMAT, MAX_CLASS_INDEX, MAX_LABEL_CLASSES } from '../../src/artifacts/formats/canonical.js';
import { convertCsv, MAX_RECORD_CHARS } from '../../src/artifacts/formats/csv.js';
import { readSafetensors } from '../../src/artifacts/formats/safetensors.js';
import { BastionError } from '../../src/errors.js';
import { datasetRefusal } from '../helpers/refusal.js';

// ---------------------------------------------------------------------------------------------------
// helpers

function collectingSink(): ByteSink & { bytes(): Buffer } {
  const chunks: Buffer[] = [];
  return {
    async write(chunk) {
      chunks.push(Buffer.from(chunk));
    },
    bytes: () => Buffer.concat(chunks),
  };
}

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let pos = 0; pos < bytes.length; pos += size) yield bytes.slice(pos, pos + size);
}

const opener = (content: string | Uint8Array, chunkSize = 1 << 16) => {
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  return () => chunked(bytes, chunkSize);
};

async function convert(content: string | Uint8Array, options: { labelColumn?: string } = {}, chunkSize?: number) {
  const sink = collectingSink();
  const summary = await convertCsv(opener(content, chunkSize), options, sink);
  const output = sink.bytes();
  const { metadata, tensors } = readSafetensors(output);
  const inputs = tensors.find((t) => t.name === 'inputs.0')!;
  const labels = tensors.find((t) => t.name === 'labels')!;
  const labelValues =
    labels.dtype === 'I64'
      ? Array.from(new BigInt64Array(Uint8Array.from(labels.data).buffer), Number)
      : Array.from(new Float32Array(Uint8Array.from(labels.data).buffer));
  return {
    summary,
    output,
    metadata,
    names: tensors.map((t) => t.name),
    features: Array.from(new Float32Array(Uint8Array.from(inputs.data).buffer)),
    labels: labelValues,
    labelDtype: labels.dtype,
  };
}

const refusal = datasetRefusal;

const refuses = (content: string | Uint8Array, pattern: RegExp, options: { labelColumn?: string } = {}) =>
  assert.rejects(convertCsv(opener(content), options, collectingSink()), refusal(pattern));

// ---------------------------------------------------------------------------------------------------
// what comes out

test('converts feature columns to inputs.0 F32 [N, F] and integer labels to I64 [N] with classes', async () => {
  const result = await convert('a,b,label\n1,2.5,1\n-3,4e2,0\n5,.5,1\n');
  assert.deepEqual(result.summary, {
    sampleCount: 3,
    inputs: [{ name: 'inputs.0', dtype: 'F32', shape: [3, 2] }],
    labels: { name: 'labels', dtype: 'I64', shape: [3] },
    labelClasses: [0, 1],
  });
  assert.deepEqual(result.metadata, { format: CANONICAL_FORMAT });
  assert.deepEqual(result.names, ['inputs.0', 'labels']);
  assert.deepEqual(result.features, [1, 2.5, -3, 400, 5, 0.5]);
  assert.deepEqual(result.labels, [1, 0, 1]);
});

test('makes labels F32 with no classes when any label is not an integer literal', async () => {
  const result = await convert('x,y\n1,0.5\n2,3\n');
  assert.equal(result.labelDtype, 'F32');
  assert.deepEqual(result.labels, [0.5, 3]);
  assert.equal(result.summary.labelClasses, null);
  // 1.0 is written as a float: regression, as pandas would read it.
  assert.equal((await convert('x,y\n1,1.0\n2,2\n')).labelDtype, 'F32');
});

test('sorts label classes ascending, and gives null beyond MAX_LABEL_CLASSES distinct labels', async () => {
  assert.deepEqual((await convert('f,label\n0,7\n0,-0\n0,7\n0,+3\n')).summary.labelClasses, [0, 3, 7]);
  const rows = Array.from({ length: MAX_LABEL_CLASSES + 1 }, (_, i) => `0,${i}`).join('\n');
  const many = await convert(`f,label\n${rows}\n`);
  assert.equal(many.labelDtype, 'I64');
  assert.equal(many.summary.labelClasses, null);
});

test('takes the label from a column named label, labels, target or y in any case, else the last column', async () => {
  const target = await convert('a,Target,b\n1,7,2\n3,8,4\n');
  assert.deepEqual(target.features, [1, 2, 3, 4]);
  assert.deepEqual(target.labels, [7, 8]);
  const last = await convert('a,b,c\n1,2,3\n');
  assert.deepEqual(last.labels, [3]);
  const preferred = await convert('x,y,label\n1,2,3\n'); // "label" is preferred over "y"
  assert.deepEqual(preferred.features, [1, 2]);
  assert.deepEqual(preferred.labels, [3]);
});

test('takes the label from options.labelColumn when given', async () => {
  const result = await convert('a,b,c\n1,2,3\n4,5,6\n', { labelColumn: 'a' });
  assert.deepEqual(result.features, [2, 3, 5, 6]);
  assert.deepEqual(result.labels, [1, 4]);
});

test('reads CRLF, a BOM, quoted fields, spaces around cells, blank lines and a missing final newline alike', async () => {
  const plain = await convert('a,b,label\n1,2,0\n3,4,1\n');
  const variants = [
    '\ufeffa,b,label\r\n1,2,0\r\n3,4,1\r\n',
    '"a","b","label"\n"1","2","0"\n3,"4",1',
    'a, b ,label\n 1 , 2,0\n\n3,4 ,1\n\n',
  ];
  for (const text of variants) {
    const result = await convert(text);
    assert.deepEqual(result.output, plain.output, JSON.stringify(text));
  }
});

test('reads tab-separated files', async () => {
  const tsv = await convert('a\tb\tlabel\n1\t2\t0\n');
  assert.deepEqual(tsv.output, (await convert('a,b,label\n1,2,0\n')).output);
});

test('gives the same output whether the file comes in 1-byte, 7-byte or whole chunks', async () => {
  const text = '\ufeffh1,"h,2",label\r\n1.5,2,0\r\n"3",4e-3,1\r\n5,6,2\r\n';
  const whole = await convert(text);
  for (const size of [1, 7]) assert.deepEqual((await convert(text, {}, size)).output, whole.output, `${size}-byte chunks`);
});

test('streams more than one output chunk of features in row order', async () => {
  const rows = Array.from({ length: 5000 }, (_, i) => `${i},${i + 0.5},${-i},${i * 2},${i % 3}`);
  const result = await convert(`a,b,c,d,label\n${rows.join('\n')}\n`, {}, 4096);
  assert.equal(result.summary.sampleCount, 5000);
  assert.deepEqual(result.summary.inputs[0]!.shape, [5000, 4]);
  assert.deepEqual(result.features.slice(4 * 4999), [4999, 4999.5, -4999, 9998]);
  assert.deepEqual(result.labels.slice(0, 4), [0, 1, 2, 0]);
  assert.deepEqual(result.summary.labelClasses, [0, 1, 2]);
});

test('any matrix of finite numbers round-trips to float32 features and labels', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 5 }).chain((width) =>
        fc.array(
          fc.tuple(
            fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: width, maxLength: width }),
            fc.integer({ min: 0, max: 5 }),
          ),
          {
            minLength: 1,
            maxLength: 20,
          },
        ),
      ),
      async (rows) => {
        const width = rows[0]![0].length;
        const header = [...Array.from({ length: width }, (_, i) => `f${i}`), 'label'].join(',');
        const body = rows
          .map(([features, label]) => [...features.map((v) => (Object.is(v, -0) ? '-0' : String(v))), String(label)].join(','))
          .join('\n');
        const result = await convert(`${header}\n${body}\n`);
        assert.deepEqual(
          result.features,
          rows.flatMap(([features]) => features.map((v) => Math.fround(v))),
        );
        assert.deepEqual(
          result.labels,
          rows.map(([, label]) => label),
        );
      },
    ),
    { numRuns: 60 },
  );
});

// ---------------------------------------------------------------------------------------------------
// refusals: the file and its header

test('refuses an empty file', async () => {
  await refuses('', /the file is empty/);
  await refuses('\ufeff\n\n', /the file is empty/);
});

test('refuses a file with a header but no rows', async () => {
  await refuses('a,b,label\n', /has a header but no rows/);
  await refuses('a,b,label', /has a header but no rows/);
});

test('refuses a file with fewer than 2 columns', async () => {
  await refuses('label\n1\n2\n', /the header has 1 column; a dataset needs at least one feature column and a label column/);
});

test('refuses duplicate and empty column names', async () => {
  await refuses('a,b,a,label\n1,2,3,4\n', /header column name "a" appears twice \(columns 1 and 3\)/);
  await refuses('a,,label\n1,2,3\n', /header column 2 has an empty name/);
  await refuses('a,"  ",label\n1,2,3\n', /header column 2 has an empty name/);
});

test('refuses a labelColumn missing from the header, naming the columns that exist', async () => {
  await refuses('a,b,c\n1,2,3\n', /label column "class" is not in the header \(columns: "a", "b", "c"\)/, { labelColumn: 'class' });
  const wide = Array.from({ length: 20 }, (_, i) => `col${i}`).join(',');
  await refuses(`${wide}\n${Array(20).fill(1).join(',')}\n`, /columns: "col0", .*"col7" and 12 more\)$/, { labelColumn: 'class' });
});

test('refuses two columns that could both be the label', async () => {
  await refuses('a,label,LABEL\n1,2,3\n', /columns "label", "LABEL" could each be the label; name one with labelColumn/);
});

// ---------------------------------------------------------------------------------------------------
// refusals: rows and cells

test('refuses ragged rows, naming the line and the field counts', async () => {
  await refuses('a,b,label\n1,2,3\n4,5\n', /^line 3 has 2 fields but the header has 3$/);
  await refuses('a,b,label\n1,2,3\n4,5,6\n7,8,9,10\n', /^line 4 has 4 fields but the header has 3$/);
  await refuses('a,b,label\r\n1,2,3\r\n\r\n4,5,6,\r\n', /^line 4 has 4 fields but the header has 3$/);
});

test('refuses text in a numeric column, naming the line and column and quoting a short token', async () => {
  await refuses('age,label\n31,1\nN/A,0\n', /^line 3, column "age": "N\/A" is not a number$/);
  await refuses('a,label\n0x10,1\n', /line 2, column "a": "0x10" is not a number/);
  await refuses('a,label\n1,yes\n', /line 2, column "label": "yes" is not a number/);
});

test('never quotes more than 20 characters of a cell', async () => {
  const secret = 'Jane Doe, 12 Private Road, Springfield';
  await assert.rejects(convertCsv(opener(`name,label\n"${secret}",1\n`), {}, collectingSink()), (error: unknown) => {
    assert.ok(error instanceof BastionError);
    assert.match(error.message, /line 2, column "name": "Jane Doe, 12 Private…" is not a number/);
    assert.equal(error.message.includes('Springfield'), false);
    return true;
  });
});

test('refuses empty cells, naming the line and column', async () => {
  await refuses('a,b,label\n1,,0\n', /^line 2, column "b": the cell is empty$/);
  await refuses('a,b,label\n1,2,\n', /^line 2, column "label": the cell is empty$/);
});

test('refuses NaN and infinities in features', async () => {
  for (const token of ['NaN', 'nan', 'Inf', '-inf', '+Infinity']) {
    await refuses(
      `a,label\n${token},1\n`,
      new RegExp(`line 2, column "a": "\\${token[0]}?${token.replace(/^[+-]/, '')}" is not a finite number`),
    );
  }
});

test('refuses non-finite labels', async () => {
  await refuses('a,label\n1,NaN\n', /line 2, column "label": "NaN" is not a finite number/);
  await refuses('a,label\n1,1e999\n', /line 2, column "label": the number is too large/);
});

test('refuses numbers that overflow float32', async () => {
  await refuses('a,label\n1e39,1\n', /line 2, column "a": the number overflows float32/);
  await refuses('a,label\n1,-1e39\n', /line 2, column "label": the number overflows float32/);
  // An integer literal beyond float32 in a column that another label makes float.
  await refuses(`a,label\n1,0.5\n2,1${'0'.repeat(39)}\n`, /^line 3, column "label": the number overflows float32$/);
});

// ---------------------------------------------------------------------------------------------------
// refusals: integer labels that are not class indices

const classIndexRule = `integer labels must be class indices from 0 to ${MAX_CLASS_INDEX}`;

test('refuses a negative integer label, naming its line and the class-index rule but not the value', async () => {
  await assert.rejects(convertCsv(opener('a,label\n1,0\n2,-7\n3,1\n'), {}, collectingSink()), (error: unknown) => {
    refusal(
      new RegExp(`^line 3, column "label" holds a negative label; ${classIndexRule} \\(write regression targets with a decimal point`),
    )(error);
    assert.doesNotMatch((error as Error).message, /-7|line [24]/, 'neither the value nor other rows');
    return true;
  });
  // The first offending line is named, wherever the chunks split the file.
  await refuses('a,label\n1,0\n2,-1\n3,-2\n', /^line 3, column "label" holds a negative label/);
  await assert.rejects(convert('a,label\n1,0\n2,-1\n3,-2\n', {}, 1), refusal(/^line 3, /));
});

test('refuses an integer label of 2^63 − 1 instead of turning the column into float labels', async () => {
  await refuses(
    `a,label\n1,0\n2,${2n ** 63n - 1n}\n`,
    /^line 3, column "label" holds a label above 16777215; integer labels must be class indices/,
  );
  await refuses(`a,label\n1,0\n2,-${2n ** 63n}\n`, /^line 3, column "label" holds a negative label; /);
});

test('accepts the class index MAX_CLASS_INDEX = 2^24 − 1 and refuses one more', async () => {
  const result = await convert(`a,label\n1,0\n2,${MAX_CLASS_INDEX}\n`);
  assert.equal(result.labelDtype, 'I64');
  assert.deepEqual(result.labels, [0, MAX_CLASS_INDEX]);
  assert.deepEqual(result.summary.labelClasses, [0, MAX_CLASS_INDEX]);
  await refuses(`a,label\n1,0\n2,${MAX_CLASS_INDEX + 1}\n`, /^line 3, column "label" holds a label above 16777215; /);
});

test('checks every integer label even beyond MAX_LABEL_CLASSES distinct values', async () => {
  const rows = Array.from({ length: MAX_LABEL_CLASSES + 2 }, (_, i) => `0,${i}`).join('\n');
  await refuses(`f,label\n${rows}\n0,-1\n`, new RegExp(`^line ${MAX_LABEL_CLASSES + 4}, column "label" holds a negative label`));
});

test('a column with any non-integer label holds float regression targets: negative and huge values are kept', async () => {
  const result = await convert(`a,label\n1,-1\n2,0.5\n3,${2n ** 63n - 1n}\n`);
  assert.equal(result.labelDtype, 'F32');
  assert.deepEqual(result.labels, [-1, 0.5, Math.fround(2 ** 63)]);
  assert.equal(result.summary.labelClasses, null);
});

test('refuses malformed quoting without quoting the record', async () => {
  await refuses('a,label\n"1,0\n', /the file ends inside a quoted field \(quote still open at line \d+\)/);
  await refuses('a,label\n"1"x,0\n', /^line 2: malformed quoting in field 1$/);
  await assert.rejects(convertCsv(opener('a,label\n1,se"cret\n'), {}, collectingSink()), (error: unknown) => {
    assert.ok(error instanceof BastionError);
    assert.match(error.message, /^line 2: malformed quoting in field 2$/);
    assert.equal(error.cause, undefined);
    return true;
  });
});

test('refuses a record longer than MAX_RECORD_CHARS', async () => {
  await refuses(`a,label\n${'1'.repeat(MAX_RECORD_CHARS + 10)},0\n`, /^line 2: a record longer than 1048576 characters/);
});

test('refuses a file that changed between the two passes', async () => {
  let calls = 0;
  const open = () => chunked(Buffer.from(calls++ === 0 ? 'a,label\n1,0\n2,1\n' : 'a,label\n1,0\n'), 64);
  await assert.rejects(convertCsv(open, {}, collectingSink()), refusal(/changed between the two reading passes/));
  calls = 0;
  const relabelled = () => chunked(Buffer.from(calls++ === 0 ? 'a,label\n1,0\n' : 'a,label\n1,0.5\n'), 64);
  await assert.rejects(convertCsv(relabelled, {}, collectingSink()), refusal(/changed between the two reading passes/));
});

test('passes on an error from the source unchanged', async () => {
  const boom = new Error('disk on fire');
  async function* failing() {
    yield Buffer.from('a,label\n1,0\n');
    throw boom;
  }
  await assert.rejects(convertCsv(failing, {}, collectingSink()), (e) => e === boom);
});

test('stops reading the source when it refuses a row', async () => {
  let closed = false;
  let yielded = 0;
  async function* source() {
    try {
      yield Buffer.from('a,label\nx,0\n');
      for (;;) {
        yielded++;
        yield Buffer.from('1,0\n');
      }
    } finally {
      closed = true;
    }
  }
  await assert.rejects(convertCsv(source, {}, collectingSink()), refusal(/line 2, column "a"/));
  assert.ok(closed);
  assert.ok(yielded < 1000, `read ${yielded} chunks after the refusal`);
});

test('reports the first problem in file order whatever the chunking', async () => {
  const text = 'a,label\n1,0\nx,1\n4,5,6\n"unclosed,2\n';
  for (const size of [1, 7, 1 << 16]) {
    await assert.rejects(
      convertCsv(opener(text, size), {}, collectingSink()),
      refusal(/^line 3, column "a": "x" is not a number$/),
      `${size}-byte chunks`,
    );
  }
});

test('refuses problems in the header before looking at rows', async () => {
  await refuses('a,a\n1,2,3\n', /column name "a" appears twice/);
});
