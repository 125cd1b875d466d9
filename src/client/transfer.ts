// Uploads and downloads of artifact files, streamed: an upload reads its file from disk as the socket
// takes the request body (a multipart form whose text fields come first, since the server uses them to stage
// the file), a download writes the response to a partial file renamed into place once complete. Memory
// stays bounded by the streams' buffers whatever the file's size.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { type Dispatcher, request } from 'undici';
import type { paths } from '../generated/openapi.js';
import { ApiError, type BastionClient, parseProblem, type Schemas, unwrap } from './client.js';
import { explainConnectionFailure, explainUnauthorized, requireToken } from './connection.js';

/** Called as bytes move: `done` so far of `total` (null when the server sent no length). */
export type OnBytes = (done: number, total: number | null) => void;

type FormOf<P extends '/v1/datasets' | '/v1/models'> = paths[P]['post']['requestBody']['content']['multipart/form-data'];
export type DatasetUploadFields = Omit<FormOf<'/v1/datasets'>, 'file'>;
export type ModelUploadFields = Omit<FormOf<'/v1/models'>, 'file'>;

/** A multipart/form-data body: text fields, then one file part streamed from `filePath`. */
export function multipartBody(
  fields: Record<string, string | number | boolean | undefined>,
  filePath: string,
  onBytes?: OnBytes,
): { body: Readable; contentType: string; contentLength: number } {
  const boundary = `bastion-${randomBytes(16).toString('hex')}`;
  const quote = (value: string) => value.replace(/\r/g, '%0D').replace(/\n/g, '%0A').replace(/"/g, '%22');
  let head = '';
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    head += `--${boundary}\r\ncontent-disposition: form-data; name="${quote(name)}"\r\n\r\n${String(value)}\r\n`;
  }
  head += `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${quote(path.basename(filePath))}"\r\n`;
  head += 'content-type: application/octet-stream\r\n\r\n';
  const headBytes = Buffer.from(head, 'utf8');
  const tailBytes = Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8');
  const sizeBytes = fs.statSync(filePath).size;
  async function* parts(): AsyncGenerator<Buffer> {
    yield headBytes;
    let sent = 0;
    onBytes?.(0, sizeBytes);
    for await (const chunk of fs.createReadStream(filePath, { highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>) {
      sent += chunk.length;
      onBytes?.(sent, sizeBytes);
      yield chunk;
    }
    yield tailBytes;
  }
  return {
    body: Readable.from(parts(), { objectMode: false }),
    contentType: `multipart/form-data; boundary=${boundary}`,
    contentLength: headBytes.length + sizeBytes + tailBytes.length,
  };
}

/**
 * POSTs a multipart form with the file streamed from disk. Not through fetch: undici's fetch (Node 20's
 * too) reads a streamed request body as fast as the disk gives it, whatever the socket takes, and a
 * multi-GB upload would sit in memory; its dispatcher API writes with backpressure. The answer is the
 * same as the typed client's: the created resource, or an ApiError with the problem document.
 */
async function postForm<T>(
  client: BastionClient,
  route: '/v1/datasets' | '/v1/models',
  fields: Record<string, unknown>,
  onBytes: OnBytes | undefined,
): Promise<T> {
  const { file, ...text } = fields as { file: string } & Record<string, string | number | boolean | undefined>;
  const form = multipartBody(text, file, onBytes);
  let response: Dispatcher.ResponseData;
  try {
    response = await request(`${client.connection.url}${route}`, {
      method: 'POST',
      dispatcher: client.dispatcher,
      headers: {
        authorization: `Bearer ${requireToken(client.connection)}`,
        'content-type': form.contentType,
        'content-length': String(form.contentLength),
        accept: 'application/json',
      },
      body: form.body,
    });
  } catch (err) {
    form.body.destroy();
    throw explainConnectionFailure(err, client.connection);
  }
  const body = await response.body.text();
  if (response.statusCode >= 200 && response.statusCode < 300) return JSON.parse(body) as T;
  const hint = response.statusCode === 401 ? explainUnauthorized(client.connection) : null;
  throw new ApiError(response.statusCode, parseProblem(body), hint);
}

/** Uploads a dataset file (streamed from disk) with its form fields; the created dataset. */
export async function uploadDataset(
  client: BastionClient,
  filePath: string,
  fields: DatasetUploadFields,
  onBytes?: OnBytes,
): Promise<Schemas['Dataset']> {
  return postForm(client, '/v1/datasets', { ...fields, file: filePath }, onBytes);
}

/** Uploads a TorchScript model file (streamed from disk) with its form fields; the created model. */
export async function uploadModel(
  client: BastionClient,
  filePath: string,
  fields: ModelUploadFields,
  onBytes?: OnBytes,
): Promise<Schemas['Model']> {
  return postForm(client, '/v1/models', { ...fields, file: filePath }, onBytes);
}

/**
 * Writes a download to `target` through `<target>.partial`, renamed into place only once complete (a
 * failed download leaves no file that looks whole). Returns the bytes written.
 */
export async function saveStream(
  stream: ReadableStream<Uint8Array>,
  target: string,
  totalBytes: number | null,
  onBytes?: OnBytes,
): Promise<number> {
  const partial = `${target}.partial`;
  let written = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      written += chunk.length;
      onBytes?.(written, totalBytes);
      callback(null, chunk);
    },
  });
  try {
    onBytes?.(0, totalBytes);
    // 0600: the file may be confidential data; whoever downloaded it decides whom to show it. Opened
    // here rather than by the stream, whose open runs later: a download that broke off before that open
    // finished had its partial file created after the clean-up below removed it.
    const file = fs.createWriteStream(partial, { fd: fs.openSync(partial, 'w', 0o600) });
    await pipeline(Readable.fromWeb(stream as unknown as WebReadableStream<Uint8Array>), counter, file);
    fs.renameSync(partial, target);
  } catch (err) {
    fs.rmSync(partial, { force: true });
    throw err;
  }
  return written;
}

const lengthOf = (response: Response): number | null => {
  const raw = response.headers.get('content-length');
  return raw !== null && /^\d+$/.test(raw) ? Number(raw) : null;
};

/** Downloads a model's TorchScript file to `target`; the bytes written. */
export async function downloadModel(client: BastionClient, id: string, target: string, onBytes?: OnBytes): Promise<number> {
  const result = await client.GET('/v1/models/{id}/content', { params: { path: { id } }, parseAs: 'stream' });
  const stream = unwrap(result) as unknown as ReadableStream<Uint8Array>;
  return saveStream(stream, target, lengthOf(result.response), onBytes);
}

/** Downloads a dataset's file as uploaded to `target`; the bytes written. */
export async function downloadDataset(client: BastionClient, id: string, target: string, onBytes?: OnBytes): Promise<number> {
  const result = await client.GET('/v1/datasets/{id}/content', { params: { path: { id } }, parseAs: 'stream' });
  const stream = unwrap(result) as unknown as ReadableStream<Uint8Array>;
  return saveStream(stream, target, lengthOf(result.response), onBytes);
}
