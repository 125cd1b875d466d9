// The client's Server-Sent Events parser: whole events only once their blank line has come, whatever
// the chunking (inside a field, between CR and LF, inside a UTF-8 sequence), with the spec's line ends,
// comments, multi-line data and id carry-over.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { readSse, type SseEvent, SseParser } from '../../src/client/sse.js';

const parseAll = (text: string): SseEvent[] => {
  const parser = new SseParser();
  const events = parser.push(text);
  parser.end();
  return events;
};

async function parseBytes(chunks: Uint8Array[]): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  async function* body() {
    yield* chunks;
  }
  for await (const event of readSse(body())) events.push(event);
  return events;
}

const stream = [
  ': keep-alive',
  '',
  'id: 1',
  'event: state',
  'data: {"status":"queued","note":"ε"}',
  '',
  'event: progress',
  'data: {"step":1}',
  '',
  'data: line one',
  'data:line two',
  '',
  'event: completed',
  'data: {"status":"succeeded"}',
  '',
  '',
].join('\n');

const expected: SseEvent[] = [
  { event: 'state', data: '{"status":"queued","note":"ε"}', id: '1' },
  { event: 'progress', data: '{"step":1}', id: '1' },
  { event: 'message', data: 'line one\nline two', id: '1' },
  { event: 'completed', data: '{"status":"succeeded"}', id: '1' },
];

test('parses typed events, multi-line data, the default type "message", and carries the last id over', () => {
  assert.deepEqual(parseAll(stream), expected);
});

test('counts comment lines (keep-alives) and dispatches nothing for them', () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push(': keep-alive\n\n: again\n\n'), []);
  assert.equal(parser.comments, 2);
});

test('CRLF and lone CR end lines like LF', () => {
  assert.deepEqual(parseAll(stream.replace(/\n/g, '\r\n')), expected);
  assert.deepEqual(parseAll(stream.replace(/\n/g, '\r')), expected);
});

test('a CR at the end of a chunk and its LF at the start of the next make one line end, not two', () => {
  const parser = new SseParser();
  const events = [...parser.push('event: a\r\ndata: 1\r'), ...parser.push('\n\r'), ...parser.push('\n')];
  assert.deepEqual(events, [{ event: 'a', data: '1', id: '' }]);
});

test('an event cut off by the end of the stream (no blank line) is discarded', () => {
  assert.deepEqual(parseAll('event: state\ndata: {}\n\nevent: progress\ndata: {"step":2}\n'), [{ event: 'state', data: '{}', id: '' }]);
});

test('a leading BOM is dropped; a field without a colon is a field with an empty value; unknown fields are ignored', () => {
  assert.deepEqual(parseAll('\uFEFFdata\nretry: 10\nfoo: bar\n\n'), [{ event: 'message', data: '', id: '' }]);
});

test('an event type without data dispatches nothing and does not leak into the next event', () => {
  assert.deepEqual(parseAll('event: lonely\n\ndata: x\n\n'), [{ event: 'message', data: 'x', id: '' }]);
});

test('any split of the bytes into chunks, even inside a UTF-8 sequence, gives the same events', async () => {
  const bytes = new TextEncoder().encode(stream.replace(/\n/g, '\r\n'));
  await fc.assert(
    fc.asyncProperty(fc.uniqueArray(fc.integer({ min: 1, max: bytes.length - 1 }), { maxLength: 12 }), async (cuts) => {
      const points = [0, ...cuts.sort((a, b) => a - b), bytes.length];
      const chunks = points.slice(1).map((end, i) => bytes.subarray(points[i], end));
      assert.deepEqual(await parseBytes(chunks), expected);
    }),
    { numRuns: 300 },
  );
});

test('byte-by-byte delivery gives the same events', async () => {
  const bytes = new TextEncoder().encode(stream);
  assert.deepEqual(await parseBytes(Array.from(bytes, (b) => Uint8Array.of(b))), expected);
});
