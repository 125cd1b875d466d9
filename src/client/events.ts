// A training's live events (GET /v1/trainings/{id}/events, Server-Sent Events) as typed values: each
// event's data is the Training as it is at that moment.
import { type BastionClient, type Schemas, unwrap } from './client.js';
import { readSse } from './sse.js';

export type Training = Schemas['Training'];

/** The event types the server sends; `completed`, `failed` and `cancelled` end the stream. */
export const TRAINING_EVENT_TYPES = ['state', 'progress', 'checkpoint', 'metric', 'completed', 'failed', 'cancelled'] as const;
export type TrainingEventType = (typeof TRAINING_EVENT_TYPES)[number];
export const isTerminalEvent = (type: string): boolean => type === 'completed' || type === 'failed' || type === 'cancelled';

export interface TrainingEvent {
  type: TrainingEventType;
  training: Training;
}

/**
 * The events of training `id` until the server ends the stream (after a terminal event, or when it
 * shuts down). Unknown event types are skipped, so a newer server does not break an older client.
 */
export async function* trainingEvents(
  client: BastionClient,
  id: string,
  options: { signal?: AbortSignal } = {},
): AsyncGenerator<TrainingEvent> {
  const result = await client.GET('/v1/trainings/{id}/events', {
    params: { path: { id } },
    parseAs: 'stream',
    headers: { accept: 'text/event-stream' },
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const body = unwrap(result) as unknown as AsyncIterable<Uint8Array>;
  for await (const event of readSse(body)) {
    if (!(TRAINING_EVENT_TYPES as readonly string[]).includes(event.event)) continue;
    yield { type: event.event as TrainingEventType, training: JSON.parse(event.data) as Training };
  }
}
