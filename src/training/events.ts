// The events of training jobs for their subscribers (SSE): each subscriber gets the job as it may see it
// (its owner with the released results, others without), and a terminal event ends its subscription.
import type { Training } from './training-view.js';

export type TrainingEventType = 'state' | 'progress' | 'checkpoint' | 'metric' | 'completed' | 'failed' | 'cancelled';

export interface TrainingEvent {
  type: TrainingEventType;
  training: Training;
}

export interface TrainingSubscriber {
  /** Called with `state` first (synchronously, inside subscribe), then every event; after a terminal one, nothing more. */
  event(event: TrainingEvent): void;
  /** The server is shutting down: no more events will come. */
  end(): void;
}

export interface TrainingEvents {
  /** Tells every subscriber of the job; after a terminal event the job has none. */
  emit(id: string, type: TrainingEventType): void;
  /** Adds a subscriber that sees the results (`sees`) or not; returns its removal. */
  add(id: string, subscriber: TrainingSubscriber, sees: boolean): () => void;
  /** Ends every subscription (shutdown). */
  endAll(): void;
}

/** `render(id)` shows the job both ways; it is called once per event, only when someone listens. */
export function createTrainingEvents(render: (id: string) => { full: Training; redacted: Training }): TrainingEvents {
  /** Each subscriber with whether it sees the job's released results (its owner) or not. */
  const subscribers = new Map<string, Map<TrainingSubscriber, boolean>>();
  return {
    emit(id, type) {
      const set = subscribers.get(id);
      if (!set || set.size === 0) return;
      const { full, redacted } = render(id);
      for (const [s, sees] of [...set]) s.event({ type, training: sees ? full : redacted });
      if (type === 'completed' || type === 'failed' || type === 'cancelled') subscribers.delete(id);
    },
    add(id, subscriber, sees) {
      let set = subscribers.get(id);
      if (!set) {
        set = new Map();
        subscribers.set(id, set);
      }
      set.set(subscriber, sees);
      return () => {
        subscribers.get(id)?.delete(subscriber);
      };
    },
    endAll() {
      for (const set of subscribers.values()) for (const s of set.keys()) s.end();
      subscribers.clear();
    },
  };
}
