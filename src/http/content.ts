// The download of an artifact's file (a model or a dataset as uploaded): streamed as it is decrypted, with
// its length, a file name for `curl -OJ` and browsers, and the SHA-256 the catalogue states so a client can
// check what it saved.
import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { SealedBlobReader } from '../artifacts/sealed-blob.js';

export function sendContent(reply: FastifyReply, file: { name: string; sha256: string }, content: SealedBlobReader): FastifyReply {
  return reply
    .type('application/octet-stream')
    .header('content-length', String(content.sizeBytes))
    .header('content-disposition', `attachment; filename="${file.name}"`)
    .header('x-content-sha256', file.sha256)
    .send(Readable.from(content.chunks()));
}
