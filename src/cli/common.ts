// What every client command shares: the connection flags (one per row of the connection table), the
// client they resolve to, and output — with --json exactly one JSON value on stdout, else text.

import fs from 'node:fs';
import { type Command, Option } from 'commander';
import { stringify } from 'yaml';
import { type BastionClient, createBastionClient } from '../client/client.js';
import { type ConnectionFlags, connectionOptions, resolveConnection } from '../client/connection.js';
import { BastionError } from '../errors.js';

export interface Output {
  json?: boolean;
}

export type ClientCommandOptions = ConnectionFlags & Output;

export function print(options: Output, value: unknown, human: () => string): void {
  process.stdout.write(options.json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

/** One resource for people: YAML, which reads like the JSON without its punctuation. */
export const describe = (value: unknown): string => stringify(value, { lineWidth: 0 }).trimEnd();

export function table(rows: Record<string, string>[], columns: string[]): string {
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => r[c] ?? '')))].join('\n');
}

/** Adds the connection flags (from the connection table) and --json. */
export function addClientOptions(command: Command): Command {
  for (const option of connectionOptions) {
    const flags = 'valueName' in option ? `${option.flag} <${option.valueName}>` : option.flag;
    command.addOption(new Option(flags, option.env ? `${option.description} [${option.env}]` : option.description));
  }
  return command.addOption(new Option('--json', 'print JSON'));
}

/** The client for a command's connection flags and the BASTION_* variables. */
export function clientFor(options: ConnectionFlags): BastionClient {
  return createBastionClient(resolveConnection(options));
}

/** A commander parser for a number flag, with a message naming the flag. */
export function number(name: string, { integer = false } = {}) {
  return (raw: string): number => {
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value) || (integer && !Number.isSafeInteger(value))) {
      throw new BastionError('VALIDATION_FAILED', `Expected ${integer ? 'an integer' : 'a number'} for ${name} but received '${raw}'`);
    }
    return value;
  };
}

/** Parses a JSON flag value (or a file's content), with a message naming where it came from. */
export function parseJson(text: string, from: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new BastionError('VALIDATION_FAILED', `Expected JSON for ${from}: ${(err as Error).message}`);
  }
}

/** The text of `file`, or of stdin for "-". */
export async function readInput(file: string): Promise<string> {
  if (file !== '-') return fs.readFileSync(file, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** A policy given as --policy <json> or --policy-file <file> (not both), as the JSON text the server takes. */
export async function policyText(options: { policy?: string; policyFile?: string }): Promise<string | undefined> {
  if (options.policy !== undefined && options.policyFile !== undefined) {
    throw new BastionError('VALIDATION_FAILED', 'Give --policy or --policy-file, not both');
  }
  if (options.policy !== undefined) return JSON.stringify(parseJson(options.policy, '--policy'));
  if (options.policyFile !== undefined) {
    return JSON.stringify(parseJson(await readInput(options.policyFile), `--policy-file ${options.policyFile}`));
  }
  return undefined;
}

/** Formats a byte count for people (1.5 MiB). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}
