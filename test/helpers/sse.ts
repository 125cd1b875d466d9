// A Server-Sent Events reader for tests: feed it the bytes of a stream (fetch's body, curl -N's
// stdout) and wait for events by type — woken by their arrival, never by polling or sleeps.

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

export class SseLog {
  readonly events: SseEvent[] = [];
  /** Comment lines seen (keep-alives). */
  comments = 0;
  #buffer = '';
  #waiters: { match: (e: SseEvent) => boolean; resolve: (e: SseEvent) => void }[] = [];
  #ended = false;
  #endWaiters: (() => void)[] = [];

  /** Feeds a chunk of the stream. */
  push(chunk: string): void {
    this.#buffer += chunk;
    let cut: number;
    while ((cut = this.#buffer.indexOf('\n\n')) >= 0) {
      const block = this.#buffer.slice(0, cut);
      this.#buffer = this.#buffer.slice(cut + 2);
      const event: SseEvent = { event: 'message', data: '' };
      const data: string[] = [];
      let isComment = true;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        isComment = false;
        const at = line.indexOf(':');
        const field = at < 0 ? line : line.slice(0, at);
        const value = at < 0 ? '' : line.slice(at + 1).replace(/^ /, '');
        if (field === 'event') event.event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') event.id = value;
      }
      if (isComment) {
        this.comments += 1;
        continue;
      }
      event.data = data.join('\n');
      this.events.push(event);
      for (const w of [...this.#waiters]) {
        if (w.match(event)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(event);
        }
      }
    }
  }

  /** Marks the stream as ended. */
  end(): void {
    this.#ended = true;
    for (const resolve of this.#endWaiters.splice(0)) resolve();
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** The first event (already seen or still to come) of this type, or matching the predicate. */
  next(type: string | ((e: SseEvent) => boolean)): Promise<SseEvent> {
    const match = typeof type === 'string' ? (e: SseEvent) => e.event === type : type;
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  /** Resolves when the stream has ended. */
  whenEnded(): Promise<void> {
    if (this.#ended) return Promise.resolve();
    return new Promise((resolve) => this.#endWaiters.push(resolve));
  }

  /** The event types in arrival order. */
  types(): string[] {
    return this.events.map((e) => e.event);
  }
}

/** Parses a whole SSE body (e.g. app.inject's payload once the stream ended). */
export function parseSse(body: string): SseEvent[] {
  const log = new SseLog();
  log.push(body);
  return log.events;
}

/** Opens an SSE stream with fetch and feeds it into a new SseLog; `response` has the status and headers. */
export async function openSse(url: string, headers: Record<string, string>): Promise<{ log: SseLog; response: Response; close(): void }> {
  const controller = new AbortController();
  const response = await fetch(url, { headers, signal: controller.signal });
  const log = new SseLog();
  void (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) log.push(decoder.decode(chunk, { stream: true }));
    } catch {
      // aborted
    }
    log.end();
  })();
  return { log, response, close: () => controller.abort() };
}
