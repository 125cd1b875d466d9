// The server's command-line flags, derived from the option table in config.ts so that every
// BASTION_* variable has its matching flag and the two cannot drift apart. Both ways of starting the
// server read them — `bastion serve` (cli/main.ts) and `node dist/main.js` (main.ts) — so they live
// beside both: in cli/, main.ts and cli/ would import each other.
import { Command, Option } from 'commander';
import { type Config, configOptions } from './config.js';

export type ServeFlags = Partial<Record<keyof Config, string | boolean>>;

export function addServeOptions(command: Command): Command {
  for (const option of configOptions) {
    const flags = 'valueName' in option ? `${option.flag} <${option.valueName}>` : option.flag;
    command.addOption(new Option(flags, `${option.description} [${option.env}]`));
  }
  return command;
}

/**
 * Commander's parsed options → flag values keyed by config key. Commander names each value after its flag
 * (`--tls-cert` → `tlsCert`), which is not always the config key (`tlsCertPath`): read it by commander's name.
 */
export function serveFlagsFrom(options: Record<string, unknown>): ServeFlags {
  const flags: ServeFlags = {};
  for (const option of configOptions) {
    const value = options[new Option(option.flag).attributeName()];
    if (typeof value === 'string' || typeof value === 'boolean') flags[option.key] = value;
  }
  return flags;
}

/** Parses server flags from argv (without node and script), for `npm start -- --port 9443`. */
export function parseServeArgs(argv: string[]): ServeFlags {
  const command = addServeOptions(new Command('bastion-server').description('Start the Bastion server')).allowExcessArguments(false);
  command.parse(argv, { from: 'user' });
  return serveFlagsFrom(command.opts());
}
