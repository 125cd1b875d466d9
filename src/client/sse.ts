// A Server-Sent Events parser (the WHATWG "event stream interpretation"): bytes in, whole events out.
// It owns one invariant: an event is dispatched only when its blank line has arrived, so a chunk cut
// anywhere — inside a field, between a CR and its LF, inside a UTF-8 sequence — changes nothing.

export interface SseEvent {
  /** The `event:` field; "message" when the event named none. */
  event: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  /** The last `id:` seen on the stream (it carries over to later events, as the spec says). */
  id: string;
}

/** Incremental parser: push() decoded text as it arrives, get the events it completed. */
export class SseParser {
  #buffer = '';
  #first = true;
  /** A chunk ended with CR: a LF starting the next chunk belongs to the same line end. */
  #pendingCr = false;
  #event = '';
  #data: string[] = [];
  #lastId = '';
  /** Comment lines seen (the server's keep-alives). */
  comments = 0;

  push(text: string): SseEvent[] {
    if (this.#first && text.length > 0) {
      this.#first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.#pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.#pendingCr = false;
    this.#buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.#buffer.length; i++) {
      const c = this.#buffer.charCodeAt(i);
      if (c !== 0x0a && c !== 0x0d) continue;
      const line = this.#buffer.slice(start, i);
      if (c === 0x0d) {
        if (i + 1 === this.#buffer.length) this.#pendingCr = true;
        else if (this.#buffer.charCodeAt(i + 1) === 0x0a) i++;
      }
      start = i + 1;
      const event = this.#line(line);
      if (event) events.push(event);
    }
    this.#buffer = this.#buffer.slice(start);
    return events;
  }

  /** The stream ended: an event without its blank line is discarded (as the spec says). */
  end(): void {
    this.#buffer = '';
    this.#event = '';
    this.#data = [];
  }

  #line(line: string): SseEvent | null {
    if (line === '') {
      if (this.#data.length === 0) {
        this.#event = '';
        return null;
      }
      const event = { event: this.#event || 'message', data: this.#data.join('\n'), id: this.#lastId };
      this.#event = '';
      this.#data = [];
      return event;
    }
    if (line.startsWith(':')) {
      this.comments++;
      return null;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.#event = value;
    else if (field === 'data') this.#data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.#lastId = value;
    // `retry` and unknown fields are ignored: the CLI does not reconnect by itself.
    return null;
  }
}

/** The events of a byte stream (a fetch body), in order; ends when the stream does. */
export async function* readSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  const parser = new SseParser();
  const decoder = new TextDecoder();
  for await (const chunk of body) yield* parser.push(decoder.decode(chunk, { stream: true }));
  yield* parser.push(decoder.decode());
  parser.end();
}
