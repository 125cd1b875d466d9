// The training queue's fairness (src/training/fair-queue.ts): whatever one principal queues, another's
// next job waits for at most one job of each other principal waiting.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createFairQueue } from '../../src/training/fair-queue.js';

const drain = (q: ReturnType<typeof createFairQueue>) => {
  const out: string[] = [];
  for (let id = q.shift(); id !== undefined; id = q.shift()) out.push(id);
  return out;
};

test('one principal: first in, first out', () => {
  const q = createFairQueue();
  for (const id of ['a1', 'a2', 'a3']) q.push(id, 'a');
  assert.deepEqual(drain(q), ['a1', 'a2', 'a3']);
});

test('principals take turns, however many jobs each queued', () => {
  const q = createFairQueue();
  for (const id of ['a1', 'a2', 'a3', 'a4']) q.push(id, 'a');
  q.push('b1', 'b');
  q.push('b2', 'b');
  q.push('c1', 'c');
  assert.deepEqual(drain(q), ['a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'a4']);
});

test('a principal just served waits behind one that queued later but was served less recently', () => {
  const q = createFairQueue();
  q.push('a1', 'a');
  assert.equal(q.shift(), 'a1'); // a's job runs; its queue is empty
  q.push('a2', 'a');
  q.push('a3', 'a');
  q.push('b1', 'b'); // queued after a2 and a3
  assert.deepEqual(drain(q), ['b1', 'a2', 'a3']);
});

test('removing a queued job keeps the others in order; unknown ids and repeats are ignored', () => {
  const q = createFairQueue();
  q.push('a1', 'a');
  q.push('a2', 'a');
  q.push('a2', 'a');
  q.push('b1', 'b');
  assert.equal(q.size, 3);
  assert.equal(q.remove('a1'), true);
  assert.equal(q.remove('a1'), false);
  assert.equal(q.has('a2'), true);
  assert.deepEqual(drain(q), ['a2', 'b1']);
  assert.equal(q.size, 0);
});
