// Progress for people: a cli-progress bar on a terminal, and elsewhere (a pipe, a CI log) plain lines —
// for a training one line per state change and at most one per second of progress. Training progress
// comes from the job's event stream; uploads and downloads report the bytes they move.
import cliProgress from 'cli-progress';
import type { BastionClient } from '../client/client.js';
import { unwrap } from '../client/client.js';
import { isTerminalEvent, type Training, type TrainingEvent, trainingEvents } from '../client/events.js';
import type { OnBytes } from '../client/transfer.js';
import { formatBytes } from './common.js';

/** Where training progress goes: a bar on a terminal, plain lines, or nowhere (--json to a pipe). */
export type ProgressMode = 'bar' | 'lines' | 'none';

/** Bars on the terminal stdout; with --json stdout carries only the result, so bars go to a terminal stderr. */
export function progressMode(
  json: boolean | undefined,
  stdout: NodeJS.WriteStream = process.stdout,
  stderr: NodeJS.WriteStream = process.stderr,
): { mode: ProgressMode; stream: NodeJS.WriteStream } {
  if (!json) return { mode: stdout.isTTY ? 'bar' : 'lines', stream: stdout };
  return { mode: stderr.isTTY ? 'bar' : 'none', stream: stderr };
}

const round = (value: number, digits = 3) => Number(value.toPrecision(digits)).toString();

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function epsilonText(t: Training): string {
  if (t.epsilonPlanned === null) return 'non-private';
  return `ε ${round(t.epsilonSpent ?? 0)} of ${round(t.epsilonPlanned)}`;
}

function stepText(t: Training): string {
  return `step ${t.step}/${t.totalSteps} (epoch ${round(t.epoch)})`;
}

/** The plain line for one event. */
export function eventLine(event: TrainingEvent): string {
  const t = event.training;
  const head = `training ${t.id}`;
  switch (event.type) {
    case 'state':
    case 'progress': {
      const rate = t.samplesPerSec === null ? '' : `, ${round(t.samplesPerSec)} samples/s`;
      const eta = t.etaSeconds === null || t.status !== 'running' ? '' : `, ETA ${formatDuration(t.etaSeconds)}`;
      return `${head} ${t.status}: ${stepText(t)}, ${epsilonText(t)}${rate}${eta}`;
    }
    case 'checkpoint':
      return `${head} checkpoint at step ${t.checkpointStep ?? t.step}`;
    case 'metric': {
      const m = t.metrics.at(-1);
      return m ? `${head} epoch ${m.epoch}: mean training loss ${round(m.meanLoss, 4)} (noise std ${round(m.noiseStd)})` : `${head} metric`;
    }
    case 'completed':
      return `${head} succeeded: ${stepText(t)}, ${epsilonText(t)}; trained model ${t.resultModelId ?? '(none)'}`;
    case 'failed':
      return `${head} failed at ${stepText(t)}: ${t.error ?? 'no reason given'}`;
    case 'cancelled':
      return `${head} cancelled at ${stepText(t)}${t.error ? `: ${t.error}` : ''}`;
  }
}

/**
 * Decides which events get a plain line: every one but `progress`, and a `progress` only when the last
 * line about progress is at least `intervalMs` old (a fast training would otherwise print hundreds).
 */
export class LineThrottle {
  #lastProgressAt = Number.NEGATIVE_INFINITY;
  constructor(
    private readonly intervalMs = 1000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  shouldPrint(event: TrainingEvent): boolean {
    if (event.type !== 'progress' && event.type !== 'state') return true;
    const at = this.now();
    if (event.type === 'progress' && at - this.#lastProgressAt < this.intervalMs) return false;
    this.#lastProgressAt = at;
    return true;
  }
}

/**
 * Ctrl-C while a bar is drawn: stop it (it hid the cursor) and exit as an interrupted command does.
 * cli-progress's own gracefulExit stops the bar but swallows the signal, so the command would go on.
 * Returns the function that removes the handler.
 */
function stopOnInterrupt(stop: () => void): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    stop();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  };
}

/** The training's events drawn or printed; resolves with the training as it ended. */
export async function watchTraining(
  client: BastionClient,
  id: string,
  output: { mode: ProgressMode; stream: NodeJS.WriteStream },
): Promise<Training> {
  const throttle = new LineThrottle();
  let multibar: cliProgress.MultiBar | null = null;
  let bar: cliProgress.SingleBar | null = null;
  let finalLine: string | null = null;
  let removeInterruptHandler: () => void = () => undefined;
  const barValues = (t: Training) => ({
    status: t.status,
    epsilon: epsilonText(t),
    rate: t.samplesPerSec === null ? '–' : round(t.samplesPerSec),
    // Not `eta`: cli-progress fills that token with its own estimate; the server's knows the plan.
    remaining: t.etaSeconds === null ? '–' : formatDuration(t.etaSeconds),
  });
  const draw = (event: TrainingEvent) => {
    const t = event.training;
    if (output.mode === 'lines') {
      if (throttle.shouldPrint(event)) output.stream.write(`${eventLine(event)}\n`);
      return;
    }
    if (output.mode === 'none') return;
    if (!multibar) {
      multibar = new cliProgress.MultiBar(
        {
          stream: output.stream,
          format: `training {status} [{bar}] {value}/{total} steps | {epsilon} | {rate} samples/s | ETA {remaining}`,
          hideCursor: true,
          clearOnComplete: false,
          stopOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      );
      bar = multibar.create(Math.max(1, t.totalSteps), t.step, barValues(t));
      const drawn = multibar;
      removeInterruptHandler = stopOnInterrupt(() => drawn.stop());
    }
    if (event.type === 'metric' || event.type === 'checkpoint') multibar.log(`${eventLine(event)}\n`);
    // The bar's stop() does not flush its log: the final line is written after it.
    if (isTerminalEvent(event.type)) finalLine = eventLine(event);
    bar!.setTotal(Math.max(1, t.totalSteps));
    bar!.update(t.step, barValues(t));
  };

  let last: Training | null = null;
  try {
    for await (const event of trainingEvents(client, id)) {
      last = event.training;
      draw(event);
      if (isTerminalEvent(event.type)) return event.training;
    }
  } finally {
    (multibar as cliProgress.MultiBar | null)?.stop();
    removeInterruptHandler();
    if (finalLine !== null) output.stream.write(`${finalLine}\n`);
  }
  // The stream ended without a final event (the server stopped): say where the job stands.
  const now = unwrap(await client.GET('/v1/trainings/{id}', { params: { path: { id } } }));
  if (now.status === 'succeeded' || now.status === 'failed' || now.status === 'cancelled') {
    const type = now.status === 'succeeded' ? 'completed' : now.status;
    if (output.mode === 'lines') output.stream.write(`${eventLine({ type, training: now })}\n`);
    return now;
  }
  throw new Error(
    `the event stream of training ${id} ended while it was ${now.status} at step ${now.step}/${now.totalSteps}` +
      `${last ? '' : ' (no event came)'}` +
      ` (did the server restart?); watch it again: bastion trainings watch ${id}`,
  );
}

/**
 * Byte progress of an upload or download: a bar on a terminal stderr, else nothing (the command's
 * result line says it is done). Call `done()` when the transfer ends, whatever its outcome.
 */
export function byteProgress(label: string, stream: NodeJS.WriteStream = process.stderr): { onBytes: OnBytes; done(): void } {
  if (!stream.isTTY) return { onBytes: () => undefined, done: () => undefined };
  let bar: cliProgress.SingleBar | null = null;
  let removeInterruptHandler: () => void = () => undefined;
  return {
    onBytes: (done, total) => {
      if (!bar) {
        bar = new cliProgress.SingleBar(
          {
            stream,
            format: total === null ? `${label} {sent}` : `${label} [{bar}] {percentage}% | {sent} of {size}`,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total ?? 1, 0, { sent: formatBytes(0), size: formatBytes(total ?? 0) });
        const drawn = bar;
        removeInterruptHandler = stopOnInterrupt(() => drawn.stop());
      }
      bar.update(total === null ? 0 : done, { sent: formatBytes(done) });
    },
    done: () => {
      (bar as cliProgress.SingleBar | null)?.stop();
      removeInterruptHandler();
    },
  };
}
