// Server-Sent Events over @fastify/sse: routes declare `sse: 'only'` and stream with `streamEvents`, which
// turns a subscription (callbacks for each event and for the end) into numbered SSE messages until the
// source ends or the client goes away, whichever comes first; either way the subscription is dropped.
// A route checks access before its first write, so a refusal is still an ordinary problem+json answer.
import sseModule, { type SSEPluginOptions } from '@fastify/sse';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply } from 'fastify';
import fp from 'fastify-plugin';

/** A comment line this often keeps proxies and load balancers from closing a quiet stream. */
export const SSE_KEEP_ALIVE_MS = 15_000;

/** What a route streams: `subscribe` calls `event` for each message and `end` once; it returns its own cancel. */
export type EventSource<T> = (listener: { event: (type: string, data: T, last: boolean) => void; end: () => void }) => () => void;

/**
 * Streams `source` as SSE messages (`id` 1, 2, …; `event` the type; `data` JSON) on a route declared
 * `sse: 'only'`. Resolves when the stream ends: after a message marked `last`, when the source ends, or
 * when the client disconnects.
 */
export async function streamEvents<T>(reply: FastifyReply, source: EventSource<T>): Promise<void> {
  reply.sse.keepAlive();
  reply.sse.sendHeaders();
  let sequence = 0;
  let ended = false;
  let chain: Promise<void> = Promise.resolve();
  let cancel: () => void = () => undefined;
  await new Promise<void>((resolve) => {
    const end = () => {
      if (ended) return;
      ended = true;
      cancel();
      void chain.finally(() => {
        reply.sse.close();
        resolve();
      });
    };
    reply.sse.onClose(end);
    cancel = source({
      event: (type, data, last) => {
        if (ended) return;
        sequence += 1;
        const message = { id: String(sequence), event: type, data };
        chain = chain.then(() => reply.sse.send(message)).catch(() => undefined);
        if (last) end();
      },
      end,
    });
    if (ended) cancel();
  });
}

// The package is CommonJS: its module.exports is the fastify-plugin-wrapped plugin (what decorates every reply),
// while its `default` property is the bare function, which would decorate only a child context.
const sse = sseModule as unknown as FastifyPluginAsync<SSEPluginOptions>;

export default fp(
  async (app: FastifyInstance) => {
    await app.register(sse, { heartbeatInterval: SSE_KEEP_ALIVE_MS });
  },
  { name: 'bastion-sse' },
);
