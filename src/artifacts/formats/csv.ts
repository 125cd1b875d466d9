// Conversion of an uploaded CSV (or TSV) dataset to the canonical form: every column but the label is a
// numeric feature of `inputs.0` (F32 [N, F]); the label column becomes `labels` (I64 [N] when every
// label is an integer literal, F32 [N] otherwise). It protects one invariant: a row reaches the
// canonical dataset only when every cell is a finite number, every row has the header's field count
// and, in an integer label column, every label is a class index (canonical.ts, classIndexProblem);
// anything else is refused (422) naming the line and column, quoting at most a short token.
//
// Memory: two streaming passes over `open()`. Pass 1 validates, counts rows and decides the label
// dtype, so that pass 2 can write the header (which needs N) before the data. Pass 2 streams features
// out in 64 KiB chunks and keeps the labels in memory (N × 8 bytes for I64, N × 4 for F32), because
// they follow the features in the file; everything else is bounded by one record (≤ 1 MiB).

import { pipeline, Readable } from 'node:stream';
import { CsvError, type InfoRecord, parse } from 'csv-parse';
import { BastionError } from '../../errors.js';
import type { Dtype } from '../../vocabulary.js';
import {
  type ByteSink,
  CANONICAL_FORMAT,
  CLASS_INDEX_RULE,
  classIndexProblem,
  type DatasetSummary,
  inputName,
  LABELS_NAME,
  MAX_LABEL_CLASSES,
  quoteToken,
} from './canonical.js';
import { encodeSafetensorsHeader } from './safetensors.js';

/** Longest record (line) accepted, in characters: guards against a wrong delimiter or a stray quote. */
export const MAX_RECORD_CHARS = 1024 * 1024;

/** Column names taken as the label, in order of preference, compared case-insensitively. */
export const labelColumnNames = ['label', 'labels', 'target', 'y'] as const;

const OUTPUT_CHUNK_BYTES = 64 * 1024;

const decimalPattern = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const nonFinitePattern = /^[+-]?(?:nan|inf|infinity)$/i;
const integerPattern = /^[+-]?\d+$/;

function refuse(message: string): never {
  throw new BastionError('UNPROCESSABLE_DATASET', message);
}

const columnToken = (name: string): string => quoteToken(name, 40);

function listColumns(names: readonly string[]): string {
  const shown = names.slice(0, 8).map(columnToken).join(', ');
  return names.length > 8 ? `${shown} and ${names.length - 8} more` : shown;
}

interface CsvLayout {
  columns: string[];
  labelIndex: number;
  /** Indices of the feature columns, in header order. */
  featureIndices: number[];
}

/** Validates the header row (line 1) and picks the label column. */
function layoutOf(columns: string[], labelColumn: string | undefined): CsvLayout {
  if (columns.length < 2) {
    refuse(`the header has ${columns.length} column; a dataset needs at least one feature column and a label column`);
  }
  const seen = new Map<string, number>();
  columns.forEach((name, i) => {
    if (name === '') refuse(`header column ${i + 1} has an empty name`);
    const first = seen.get(name);
    if (first !== undefined) refuse(`header column name ${columnToken(name)} appears twice (columns ${first + 1} and ${i + 1})`);
    seen.set(name, i);
  });
  let labelIndex: number;
  if (labelColumn !== undefined) {
    labelIndex = columns.indexOf(labelColumn);
    if (labelIndex < 0) refuse(`label column ${columnToken(labelColumn)} is not in the header (columns: ${listColumns(columns)})`);
  } else {
    labelIndex = columns.length - 1;
    for (const candidate of labelColumnNames) {
      const matches = columns.flatMap((name, i) => (name.toLowerCase() === candidate ? [i] : []));
      if (matches.length > 1) {
        refuse(`columns ${listColumns(matches.map((i) => columns[i]!))} could each be the label; name one with labelColumn`);
      }
      if (matches.length === 1) {
        labelIndex = matches[0]!;
        break;
      }
    }
  }
  const featureIndices = columns.flatMap((_, i) => (i === labelIndex ? [] : [i]));
  return { columns, labelIndex, featureIndices };
}

/** The parsed value of a numeric cell; refuses empty, text and non-finite cells. Range: finite doubles. */
function parseCell(cell: string, line: number, column: string): number {
  const where = `line ${line}, column ${columnToken(column)}`;
  if (cell === '') refuse(`${where}: the cell is empty`);
  if (nonFinitePattern.test(cell)) refuse(`${where}: ${quoteToken(cell)} is not a finite number`);
  if (!decimalPattern.test(cell)) refuse(`${where}: ${quoteToken(cell)} is not a number`);
  const value = Number(cell);
  if (!Number.isFinite(value)) refuse(`${where}: the number is too large`);
  return value;
}

function toFloat32(value: number, line: number, column: string): number {
  const single = Math.fround(value);
  if (!Number.isFinite(single)) refuse(`line ${line}, column ${columnToken(column)}: the number overflows float32`);
  return single;
}

/** Why csv-parse stopped, in our words: its own messages may quote the record. */
function describeCsvError(error: CsvError): string {
  const line = typeof error.lines === 'number' ? error.lines : '?';
  switch (error.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return `the file ends inside a quoted field (quote still open at line ${line})`;
    case 'CSV_INVALID_CLOSING_QUOTE':
    case 'CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE':
    case 'INVALID_OPENING_QUOTE':
      return `line ${line}: malformed quoting in field ${typeof error.column === 'number' ? error.column + 1 : '?'}`;
    case 'CSV_MAX_RECORD_SIZE':
      return `line ${line}: a record longer than ${MAX_RECORD_CHARS} characters (wrong delimiter or unclosed quote?)`;
    default:
      return `line ${line}: the CSV cannot be parsed (${error.code})`;
  }
}

/** The field delimiter of the header line: tab when it has more tabs than commas outside quotes. */
function sniffDelimiter(head: Buffer): ',' | '\t' {
  let commas = 0;
  let tabs = 0;
  let quoted = false;
  for (const byte of head) {
    if (byte === 0x22) quoted = !quoted;
    else if (!quoted && (byte === 0x0a || byte === 0x0d)) break;
    else if (!quoted && byte === 0x2c) commas++;
    else if (!quoted && byte === 0x09) tabs++;
  }
  return tabs > commas ? '\t' : ',';
}

async function* chain(prefix: readonly Uint8Array[], rest: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield* prefix;
    for (;;) {
      const next = await rest.next();
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await rest.return?.();
  }
}

interface CsvRow {
  /** The row's line in the file (1-based; line 1 is the header). */
  line: number;
  /** Feature values as float32, in header order of the feature columns. */
  features: Float32Array;
  /**
   * The label: an integer literal of any size (`value` then the nearest double, to be checked as a
   * class index), or another number (`value` then float32).
   */
  label: { value: number; isInteger: boolean };
}

/**
 * Validates one record inside csv-parse's `on_record` hook: the header (line 1) sets the layout, every
 * later record must match it. Running there, rather than on the records the stream yields, means
 * refusals come in file order whatever the chunking: csv-parse stops at the first error, and a
 * malformed record after a bad cell cannot be reported first.
 */
function makeRecordValidator(labelColumn: string | undefined) {
  let layout: CsvLayout | null = null;
  const validate = (fields: string[], line: number): CsvRow | null => {
    if (layout === null) {
      layout = layoutOf(
        fields.map((name) => name.trim()),
        labelColumn,
      );
      return null;
    }
    const { columns, featureIndices, labelIndex } = layout;
    if (fields.length !== columns.length) refuse(`line ${line} has ${fields.length} fields but the header has ${columns.length}`);
    const features = new Float32Array(featureIndices.length);
    for (let f = 0; f < featureIndices.length; f++) {
      const c = featureIndices[f]!;
      features[f] = toFloat32(parseCell(fields[c]!, line, columns[c]!), line, columns[c]!);
    }
    const text = fields[labelIndex]!;
    const parsed = parseCell(text, line, columns[labelIndex]!);
    // An integer literal stays an integer however large, so that a huge class index is refused as
    // one rather than turning the whole column into float regression targets.
    const isInteger = integerPattern.test(text);
    return { line, features, label: { value: isInteger ? parsed : toFloat32(parsed, line, columns[labelIndex]!), isInteger } };
  };
  return { validate, layout: () => layout };
}

/**
 * One full pass over the CSV that `open()` yields: `visit` is called for every row, in order, after
 * the row has been validated. Returns the layout and the row count.
 */
async function scan(
  open: () => AsyncIterable<Uint8Array>,
  labelColumn: string | undefined,
  visit: (row: CsvRow) => void | Promise<void>,
): Promise<{ layout: CsvLayout; rowCount: number }> {
  const iterator = open()[Symbol.asyncIterator]();
  try {
    // Buffer up to the end of the header line to choose the delimiter.
    const prefix: Uint8Array[] = [];
    let prefixBytes = 0;
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      prefix.push(next.value);
      prefixBytes += next.value.length;
      if (next.value.includes(0x0a) || next.value.includes(0x0d) || prefixBytes >= MAX_RECORD_CHARS) break;
    }
    const validator = makeRecordValidator(labelColumn);
    const parser = parse({
      bom: true,
      delimiter: sniffDelimiter(Buffer.concat(prefix)),
      max_record_size: MAX_RECORD_CHARS,
      // Field counts are checked by the validator, so the message can name both counts.
      relax_column_count: true,
      skip_empty_lines: true,
      trim: true,
      // csv-parse's typings want the hook to return a record; it returns our row (or null: skip).
      on_record: ((record: string[], context: InfoRecord) => validator.validate(record, context.lines)) as unknown as (
        record: string[],
        context: InfoRecord,
      ) => string[],
    });
    pipeline(Readable.from(chain(prefix, iterator), { objectMode: false }), parser, () => {
      // Errors reach us through the parser's iterator; an early stop is not an error.
    });
    let rowCount = 0;
    try {
      for await (const row of parser as AsyncIterable<CsvRow>) {
        await visit(row);
        rowCount++;
      }
    } catch (error) {
      // Do not chain the CsvError as a cause: it carries the raw record.
      if (error instanceof CsvError) refuse(describeCsvError(error));
      throw error;
    } finally {
      parser.destroy();
    }
    const layout = validator.layout();
    if (layout === null) refuse('the file is empty');
    if (rowCount === 0) refuse('the file has a header but no rows');
    return { layout, rowCount };
  } finally {
    // Stop the source now rather than whenever the stream machinery gets to it; a second return()
    // (from chain's own cleanup) is harmless.
    await iterator.return?.();
  }
}

/**
 * Converts the CSV that `open()` yields (called twice; each call must yield the same bytes) to the
 * canonical safetensors written to `sink`. Line 1 is the header. The label column is
 * `options.labelColumn` (exact name), else the one column named label, labels, target or y (any case,
 * in that order of preference), else the last column. Accepts comma or tab delimiters (chosen from the
 * header line), CRLF, a UTF-8 BOM, quoted fields, surrounding spaces, blank lines (skipped) and a
 * trailing newline. Throws UNPROCESSABLE_DATASET for anything it cannot use.
 */
export async function convertCsv(
  open: () => AsyncIterable<Uint8Array>,
  options: { labelColumn?: string },
  sink: ByteSink,
): Promise<DatasetSummary> {
  // Pass 1: validate, count, decide the label dtype. Whether a label must be a class index is known
  // only at the end (one non-integer label makes the column float), so the first integer label that
  // is not one, and the first that overflows float32, are kept until then.
  const stats: { labelKind: 'integer' | 'float'; notClassIndex: { line: number; problem: string } | null; notFloat32: number | null } = {
    labelKind: 'integer',
    notClassIndex: null,
    notFloat32: null,
  };
  const classes = new Set<number>();
  const first = await scan(open, options.labelColumn, ({ line, label }) => {
    if (!label.isInteger) {
      stats.labelKind = 'float';
      return;
    }
    const problem = classIndexProblem(label.value);
    if (problem !== null) stats.notClassIndex ??= { line, problem };
    if (stats.notFloat32 === null && !Number.isFinite(Math.fround(label.value))) stats.notFloat32 = line;
    if (problem === null && stats.labelKind === 'integer' && classes.size <= MAX_LABEL_CLASSES) classes.add(label.value);
  });
  const { labelKind } = stats;
  const { layout, rowCount } = first;
  const labelName = layout.columns[layout.labelIndex]!;
  if (labelKind === 'integer' && stats.notClassIndex !== null) {
    const { line, problem } = stats.notClassIndex;
    refuse(
      `line ${line}, column ${columnToken(labelName)} holds ${problem}; ${CLASS_INDEX_RULE} ` +
        '(write regression targets with a decimal point, as in 3.0, to make them float labels)',
    );
  }
  if (labelKind === 'float' && stats.notFloat32 !== null) {
    refuse(`line ${stats.notFloat32}, column ${columnToken(labelName)}: the number overflows float32`);
  }
  const featureCount = layout.featureIndices.length;
  const labelDtype: Dtype = labelKind === 'integer' ? 'I64' : 'F32';

  const inputs = { name: inputName(0), dtype: 'F32' as const, shape: [rowCount, featureCount] };
  const labels = { name: LABELS_NAME, dtype: labelDtype, shape: [rowCount] };
  await sink.write(encodeSafetensorsHeader([inputs, labels], { format: CANONICAL_FORMAT }));

  // Pass 2: stream the features out; keep the labels, which follow them in the file.
  const changed = (): never => refuse('the file changed between the two reading passes');
  const rowBytes = featureCount * 4;
  const chunkBytes = Math.max(OUTPUT_CHUNK_BYTES, rowBytes);
  let chunk = Buffer.allocUnsafe(chunkBytes);
  let used = 0;
  const labelBytes = Buffer.alloc(rowCount * (labelDtype === 'I64' ? 8 : 4));
  let row = 0;
  const second = await scan(open, options.labelColumn, async ({ features, label }) => {
    if (row >= rowCount || (labelDtype === 'I64' && (!label.isInteger || classIndexProblem(label.value) !== null))) changed();
    if (used + rowBytes > chunkBytes) {
      await sink.write(chunk.subarray(0, used));
      chunk = Buffer.allocUnsafe(chunkBytes);
      used = 0;
    }
    for (let f = 0; f < featureCount; f++, used += 4) chunk.writeFloatLE(features[f]!, used);
    if (labelDtype === 'I64') labelBytes.writeBigInt64LE(BigInt(label.value), row * 8);
    else labelBytes.writeFloatLE(label.value, row * 4);
    row++;
  });
  if (second.rowCount !== rowCount || second.layout.columns.join('\u0000') !== layout.columns.join('\u0000')) changed();
  if (used > 0) await sink.write(chunk.subarray(0, used));
  for (let offset = 0; offset < labelBytes.length; offset += OUTPUT_CHUNK_BYTES) {
    await sink.write(labelBytes.subarray(offset, offset + OUTPUT_CHUNK_BYTES));
  }

  return {
    sampleCount: rowCount,
    inputs: [inputs],
    labels,
    labelClasses: labelKind === 'integer' && classes.size <= MAX_LABEL_CLASSES ? [...classes].sort((a, b) => a - b) : null,
  };
}
