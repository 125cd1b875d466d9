// /v1/attestation: a fresh DCAP quote binding the server's TLS key and the caller's nonce (no token:
// clients attest the server before they trust it with one). Outside an enclave, or over plain HTTP,
// it answers 503 saying so; it never makes up a quote.
import rateLimit from '@fastify/rate-limit';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { type Static, Type } from 'typebox';
import { type Attestor, parseQuoteBody, reportDataForKey, serialized, spkiSha256 } from '../../enclave/attestation.js';
import { BastionError } from '../../errors.js';
import { EnclaveIdentitySchema, problemResponses } from '../schemas/common.js';

const AttestationSchema = Type.Object(
  {
    quote: Type.String({ description: 'the DCAP quote, base64' }),
    version: Type.Integer({ description: 'quote format version (3, 4 or 5)' }),
    reportData: Type.String({ description: 'hex: SHA-256(TLS public key, SPKI DER) ‖ SHA-256(nonce), as in the quote' }),
    certificate: Type.String({ description: 'the TLS certificate (PEM) whose public key the quote binds' }),
    identity: Type.Unsafe<Static<typeof EnclaveIdentitySchema>>({
      ...EnclaveIdentitySchema,
      description: 'as the quote states it (verify the quote before trusting it)',
    }),
  },
  { additionalProperties: false },
);

const NonceQuery = Type.Object(
  { nonce: Type.String({ pattern: '^(?:[0-9a-fA-F]{2}){1,32}$', description: 'fresh random bytes, hex (1–32 bytes)' }) },
  { additionalProperties: false },
);

/** Quotes per client address and minute: a quote costs the enclave tens of milliseconds to seconds, and the route needs no token. */
export const ATTESTATION_RATE_LIMIT = { max: 20, timeWindow: 60_000 } as const;

export default async function attestationRoutes(
  root: FastifyInstance,
  options: { attestor: Attestor | null; certificatePem: string | null },
) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  // Scoped to this plugin: only the attestation route is limited (per client address, in memory).
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) =>
      new BastionError(
        'TOO_MANY_REQUESTS',
        `At most ${context.max} attestations a minute from one address; retry in ${Math.ceil(context.ttl / 1000)} s`,
        {
          retryAfterSeconds: Math.max(1, Math.ceil(context.ttl / 1000)),
        },
      ),
  });
  const attestor = options.attestor ? serialized(options.attestor) : null;
  // Once, at start: a certificate whose key cannot be read strictly stops the server here, not each request.
  const tlsKeySha256 = options.certificatePem ? spkiSha256(options.certificatePem) : null;
  app.get(
    '/v1/attestation',
    {
      schema: {
        operationId: 'getAttestation',
        tags: ['attestation'],
        summary: 'Attest the server',
        description:
          'A fresh DCAP quote from the enclave whose report data is SHA-256(the TLS public key, SPKI DER) ‖ SHA-256(nonce), with the ' +
          'certificate and the identity it states. Check the quote (signatures up to Intel, the expected MRENCLAVE) and that the ' +
          'certificate is the one this connection presented before sending anything. No token. 503 outside an enclave. At most 20 a ' +
          'minute from one address (429 with Retry-After).',
        security: [],
        querystring: NonceQuery,
        response: { 200: AttestationSchema, ...problemResponses(400, 429, 500, 503) },
      },
      config: { public: true, rateLimit: ATTESTATION_RATE_LIMIT },
    },
    async (request) => {
      if (!attestor) throw new BastionError('SERVICE_UNAVAILABLE', 'This server does not run in an SGX enclave: it has no quote to give');
      if (!options.certificatePem || !tlsKeySha256)
        throw new BastionError('SERVICE_UNAVAILABLE', 'This server serves plain HTTP: there is no TLS key for a quote to bind');
      const reportData = reportDataForKey(tlsKeySha256, Buffer.from(request.query.nonce, 'hex'));
      const quote = await attestor.quote(reportData);
      const parsed = parseQuoteBody(quote);
      return {
        quote: quote.toString('base64'),
        version: parsed.version,
        reportData: reportData.toString('hex'),
        certificate: options.certificatePem,
        identity: parsed.identity,
      };
    },
  );
}
