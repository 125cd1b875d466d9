// Hostile and malformed upload forms (src/http/plugins/multipart.ts): what the multipart parser cannot
// read is a 400 problem, never a 500, and leaves nothing staged; numbers and booleans in form fields
// are parsed strictly, each refusal naming its field.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { buildTestApp, type TestApp } from '../helpers/app.js';
import { multipartForm } from '../helpers/multipart.js';

let t: TestApp;
let member: string;
before(async () => {
  t = await buildTestApp();
  member = t.principal('uploader').token;
});
after(async () => t.close());

async function post(url: '/v1/models' | '/v1/datasets', contentType: string, payload: Buffer | string) {
  return t.app.inject({ method: 'POST', url, payload, headers: { 'content-type': contentType, ...t.auth(member) } });
}

/** The response is this problem, and no staged upload is left behind. */
function assertProblem(res: Awaited<ReturnType<typeof post>>, status: number, slug: string) {
  assert.equal(res.statusCode, status, res.body);
  assert.match(res.headers['content-type'] as string, /^application\/problem\+json/);
  const problem = res.json();
  assert.equal(problem.type, `urn:bastion:problem:${slug}`);
  assert.equal(problem.status, status);
  assert.equal('requestId' in problem, false, 'a client error, not an internal one');
  assert.deepEqual(fs.readdirSync(t.blobs.stagingDir), []);
  return problem;
}

const B = 'bastion-test-boundary';
const formType = `multipart/form-data; boundary=${B}`;
const part = (disposition: string, body: string, type?: string) =>
  `--${B}\r\nContent-Disposition: ${disposition}\r\n${type ? `Content-Type: ${type}\r\n` : ''}\r\n${body}\r\n`;
const end = `--${B}--\r\n`;

describe('malformed multipart bodies', () => {
  test('a multipart content type without a boundary gets 400 bad-request', async () => {
    for (const type of ['multipart/form-data', 'multipart/form-data; charset=utf-8', 'multipart/form-data; boundary=']) {
      const problem = assertProblem(await post('/v1/models', type, part('form-data; name="name"', 'x') + end), 400, 'bad-request');
      assert.match(problem.detail, /multipart\/form-data body cannot be read/, type);
    }
  });

  test('a body that is not multipart at all gets 400 bad-request', async () => {
    const bodies = [Buffer.from([0, 1, 2, 255, 254, 13, 10, 13, 10]), 'garbage without any boundary', `--${B}\r\ngarbage`];
    for (const payload of bodies) {
      assertProblem(await post('/v1/datasets', formType, payload), 400, 'bad-request');
    }
  });

  test('a body cut before its closing boundary gets 400 and leaves no staged file, wherever it is cut', async () => {
    const form = await multipartForm({ name: 'truncated' }, [{ content: Buffer.alloc(256 * 1024, 7) }]);
    const closing = form.payload.lastIndexOf('--\r\n') - 2; // just before the final "--boundary--"
    for (const cut of [closing, form.payload.length - 3, 128 * 1024, 200]) {
      for (const url of ['/v1/models', '/v1/datasets'] as const) {
        const problem = assertProblem(await post(url, form.headers['content-type']!, form.payload.subarray(0, cut)), 400, 'bad-request');
        assert.match(problem.detail, /cannot be read/, `${url} cut at ${cut}`);
      }
    }
  });

  test('a file part without a name gets 400 validation-failed, even though a file part may have any name', async () => {
    const file = part('form-data; filename="model.pt"', 'PK\u0003\u0004', 'application/octet-stream');
    const payload = part('form-data; name="name"', 'x') + file + end;
    const problem = assertProblem(await post('/v1/models', formType, payload), 400, 'validation-failed');
    assert.deepEqual(problem.errors, [{ pointer: '', detail: 'is a part without a name (Content-Disposition: form-data; name="...")' }]);
  });

  test('a field without a name, or with an empty one, gets 400 validation-failed', async () => {
    for (const disposition of ['form-data', 'form-data; name=""']) {
      const payload = part(disposition, 'x') + part('form-data; name="file"; filename="m.pt"', 'bytes', 'application/octet-stream') + end;
      const problem = assertProblem(await post('/v1/models', formType, payload), 400, 'validation-failed');
      assert.equal(problem.errors[0].pointer, '', disposition);
    }
  });
});

describe('numbers and booleans in form fields', () => {
  async function uploadDataset(fields: Record<string, string>) {
    const form = await multipartForm({ name: 'numbers', ...fields }, [{ content: 'a,label\n1,0\n' }]);
    return post('/v1/datasets', form.headers['content-type']!, form.payload);
  }

  test('a number that is not written in decimal is refused with 400 naming the field, not read as another number', async () => {
    const refused = ['0x10', '0X1F', '0o10', '0b10', '010', 'Infinity', '-Infinity', 'NaN', '', ' 8', '8 ', '\t8', '+8'];
    refused.push('1_000', '.5', '5.', '1e', '1e+', '8px', '1,5', '١');
    for (const value of refused) {
      const problem = assertProblem(await uploadDataset({ privacyLimit: value }), 400, 'validation-failed');
      assert.deepEqual(
        problem.errors.map((e: { pointer: string }) => e.pointer),
        ['/privacyLimit'],
        JSON.stringify(value),
      );
      assert.match(problem.errors[0].detail, /must be a decimal number/);
    }
  });

  test('every malformed number and boolean is reported at once, next to the schema errors', async () => {
    const res = await uploadDataset({ privacyLimit: '0x10', delta: '1e-5x', allowNonPrivate: '1', labelColumn: '' });
    const problem = assertProblem(res, 400, 'validation-failed');
    const pointers = problem.errors.map((e: { pointer: string }) => e.pointer).sort();
    assert.deepEqual(pointers, ['/allowNonPrivate', '/delta', '/labelColumn', '/privacyLimit']);
    assert.match(problem.errors.find((e: { pointer: string }) => e.pointer === '/allowNonPrivate').detail, /must be true or false/);
  });

  test('decimal numbers, exponents included, reach the schema: ranges are checked on the value', async () => {
    // Well-formed but out of range: the schema's own errors, so the number was read as written.
    const outOfRange = [
      ['privacyLimit', '1e4'],
      ['privacyLimit', '-1'],
      ['privacyLimit', '0'],
      ['delta', '1E0'],
      ['delta', '2.5'],
    ];
    for (const [field, value] of outOfRange as [string, string][]) {
      const problem = assertProblem(await uploadDataset({ [field]: value }), 400, 'validation-failed');
      assert.equal(problem.errors[0].pointer, `/${field}`, `${field}=${value}`);
      assert.match(problem.errors[0].detail, /^must be/, `${field}=${value}`);
      assert.doesNotMatch(problem.errors[0].detail, /decimal number/, `${field}=${value}`);
    }
  });
});

describe('artifact names', () => {
  test('a model or dataset name with a control or bidirectional formatting character is refused with 400 naming /name, in words', async () => {
    for (const url of ['/v1/models', '/v1/datasets'] as const) {
      for (const name of ['invoice\u202Etxt.pt', 'line\nbreak', 'bell\u0007']) {
        const form = await multipartForm({ name, ...(url === '/v1/datasets' ? { privacyLimit: '1' } : {}) }, [
          { content: 'a,label\n1,0\n' },
        ]);
        const res = await post(url, form.headers['content-type']!, form.payload);
        const problem = assertProblem(res, 400, 'validation-failed');
        assert.deepEqual(
          problem.errors,
          [{ pointer: '/name', detail: 'must not contain control characters, line separators or bidirectional formatting characters' }],
          url,
        );
      }
    }
  });
});
