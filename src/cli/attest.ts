// `bastion attest verify`: checks a DCAP quote file offline (src/enclave/quote-verify.ts) and says what it
// could not check without Intel's collateral. Exit 0 only when every check passes; 1 names the first check
// that failed; 2 when the input cannot be checked at all (an unreadable file, a malformed option).
import { Command, Option } from 'commander';
import fs from 'node:fs';
import { verifyQuote, type QuoteExpectations, type QuoteVerification } from '../enclave/quote-verify.js';
import type { Output } from './common.js';

export const ATTEST_EXIT = { verified: 0, failed: 1, unchecked: 2 } as const;

export interface AttestVerifyOptions extends Output {
  quote: string;
  mrenclave?: string;
  mrsigner?: string;
  isvProdId?: string;
  minIsvSvn?: string;
  allowDebug?: boolean;
  reportData?: string;
  /** ISO 8601 time; the clock when absent. */
  at?: string;
}

/** The command's work without commander: the exit code and the text to print. */
export function attestVerify(options: AttestVerifyOptions, now: Date): { exitCode: number; output: string } {
  const at = options.at === undefined ? now : new Date(options.at);
  if (Number.isNaN(at.getTime())) {
    return { exitCode: ATTEST_EXIT.unchecked, output: `bastion: attest verify: --at ${options.at} is not a date` };
  }
  const integer = (name: string, value: string | undefined) => {
    if (value === undefined) return undefined;
    if (!/^(0|[1-9][0-9]{0,4})$/.test(value) || Number(value) > 0xffff) {
      throw new TypeError(`Expected integer between 0 and 65535 for ${name} but received ${value}`);
    }
    return Number(value);
  };
  let quote: Buffer;
  let result: QuoteVerification;
  try {
    quote = fs.readFileSync(options.quote);
    const expected: QuoteExpectations = {
      mrenclave: options.mrenclave,
      mrsigner: options.mrsigner,
      isvProdId: integer('--isv-prod-id', options.isvProdId),
      minIsvSvn: integer('--min-isv-svn', options.minIsvSvn),
      allowDebug: options.allowDebug ?? false,
      reportData: options.reportData,
    };
    result = verifyQuote(quote, { at, expected });
  } catch (err) {
    return { exitCode: ATTEST_EXIT.unchecked, output: `bastion: attest verify: ${err instanceof Error ? err.message : String(err)}` };
  }
  const value = { ...result, verifiedAt: at.toISOString() };
  let text: string;
  if (result.ok) {
    const q = result.quote;
    const id = q.identity;
    const who = id
      ? [`MRENCLAVE ${id.mrenclave}`, `MRSIGNER ${id.mrsigner}`, `ISV prod id ${id.isvProdId}, ISV SVN ${id.isvSvn}, debug ${id.debug}`]
      : [`MRTD ${q.tdIdentity!.mrtd}`, `debug ${q.tdIdentity!.debug}`];
    text = [
      `quote verified at ${at.toISOString()}: version ${q.version}, ${q.teeType.toUpperCase()}, chain to the pinned Intel SGX Root CA`,
      ...who,
      `report data ${q.reportData}`,
      `not checked offline: ${result.notChecked.join(', ')}`,
    ].join('\n');
  } else {
    text = `quote NOT verified: check ${result.failedCheck} failed: ${result.reason}`;
  }
  return { exitCode: result.ok ? ATTEST_EXIT.verified : ATTEST_EXIT.failed, output: options.json ? JSON.stringify(value, null, 2) : text };
}

/** Adds `attest` and its `verify`; returns `attest` for the commands of other files. */
export function addAttestCommands(program: Command): Command {
  const attest = program.command('attest').description('attestation evidence, checked locally (no server)');
  attest
    .command('verify')
    .description('verify an Intel DCAP quote offline (not TCB status, not revocation); exit 0 verified, 1 a check failed, 2 unchecked')
    .addOption(new Option('--quote <file>', 'the quote, binary').makeOptionMandatory())
    .addOption(new Option('--mrenclave <hex>', 'expected MRENCLAVE (64 hex digits)'))
    .addOption(new Option('--mrsigner <hex>', 'expected MRSIGNER (64 hex digits)'))
    .addOption(new Option('--isv-prod-id <n>', 'expected ISV prod id'))
    .addOption(new Option('--min-isv-svn <n>', 'smallest acceptable ISV SVN'))
    .addOption(new Option('--report-data <hex>', 'expected report data (128 hex digits)'))
    .addOption(new Option('--allow-debug', 'accept a debug enclave (its memory is readable by its host)'))
    .addOption(new Option('--at <time>', 'verification time, ISO 8601 (default: now)'))
    .addOption(new Option('--json', 'print JSON'))
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : ATTEST_EXIT.unchecked))
    .action((options: AttestVerifyOptions) => {
      const { exitCode, output } = attestVerify(options, new Date());
      (exitCode === ATTEST_EXIT.unchecked ? process.stderr : process.stdout).write(`${output}\n`);
      process.exitCode = exitCode;
    });
  return attest;
}
