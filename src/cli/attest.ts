// `bastion attest verify`: checks a DCAP quote file offline (src/enclave/quote-verify.ts), or attests a
// running server over one TLS connection (src/enclave/remote-verify.ts), and says what it could not check
// without Intel's collateral. Exit 0 only when every check passes; 1 names the first check that failed; 2
// when nothing could be checked (an unreadable file, an unreachable server, a malformed option). The trust
// anchor is always the pinned Intel SGX Root CA: no flag or variable changes it.

import fs from 'node:fs';
import { type Command, Option } from 'commander';
import { type CollateralFile, type CollateralVerdict, parseCollateral } from '../enclave/collateral.js';
import { type ParsedQuote, type QuoteExpectations, type QuoteVerification, verifyQuote } from '../enclave/quote-verify.js';
import { ServerUnreachable, type ServerVerification, verifyServer } from '../enclave/remote-verify.js';
import type { Output } from './common.js';

export const ATTEST_EXIT = { verified: 0, failed: 1, unchecked: 2 } as const;

export interface AttestVerifyOptions extends Output {
  /** A quote file to verify offline; exactly one of quote and url. */
  quote?: string;
  /** https://host:port of a running server to attest over one TLS connection. */
  url?: string;
  mrenclave?: string;
  mrsigner?: string;
  isvProdId?: string;
  minIsvSvn?: string;
  allowDebug?: boolean;
  reportData?: string;
  /** Intel's collateral for the quote's platform: TCB status, revocation and the QE identity are checked too. */
  collateral?: string;
  /** TCB statuses accepted with --collateral (default UpToDate). */
  acceptTcbStatus?: string[];
  /** ISO 8601 time; the clock when absent. */
  at?: string;
}

const unchecked = (message: string) => ({ exitCode: ATTEST_EXIT.unchecked, output: `bastion: attest verify: ${message}` });

function identityLines(q: ParsedQuote): string[] {
  const id = q.identity;
  return id
    ? [`MRENCLAVE ${id.mrenclave}`, `MRSIGNER ${id.mrsigner}`, `ISV prod id ${id.isvProdId}, ISV SVN ${id.isvSvn}, debug ${id.debug}`]
    : [`MRTD ${q.tdIdentity!.mrtd}`, `debug ${q.tdIdentity!.debug}`];
}

/** The command's work without commander: the exit code and the text to print. */
export async function attestVerify(options: AttestVerifyOptions, now: Date): Promise<{ exitCode: number; output: string }> {
  if ((options.quote === undefined) === (options.url === undefined)) {
    return unchecked('give exactly one of --quote <file> and --url <https://host:port>');
  }
  if (options.url !== undefined && options.reportData !== undefined) {
    return unchecked('--report-data applies to --quote only: with --url the report data is what binds the connection');
  }
  const at = options.at === undefined ? now : new Date(options.at);
  if (Number.isNaN(at.getTime())) return unchecked(`--at ${options.at} is not a date`);
  const integer = (name: string, value: string | undefined) => {
    if (value === undefined) return undefined;
    if (!/^(0|[1-9][0-9]{0,4})$/.test(value) || Number(value) > 0xffff) {
      throw new TypeError(`Expected integer between 0 and 65535 for ${name} but received ${value}`);
    }
    return Number(value);
  };
  let expected: QuoteExpectations;
  try {
    expected = {
      mrenclave: options.mrenclave,
      mrsigner: options.mrsigner,
      isvProdId: integer('--isv-prod-id', options.isvProdId),
      minIsvSvn: integer('--min-isv-svn', options.minIsvSvn),
      allowDebug: options.allowDebug ?? false,
      reportData: options.reportData,
    };
  } catch (err) {
    return unchecked(err instanceof Error ? err.message : String(err));
  }
  let collateral: CollateralOptions;
  try {
    collateral = readCollateral(options);
  } catch (err) {
    return unchecked(err instanceof Error ? err.message : String(err));
  }
  return options.url !== undefined
    ? verifyUrl(options.url, expected, at, collateral, options)
    : verifyFile(options.quote!, expected, at, collateral, options);
}

type CollateralOptions = { collateral?: CollateralFile; acceptTcbStatuses?: readonly string[] };

/** The --collateral file (parsed, not yet checked) and --accept-tcb-status, as verify options; throws naming the file. */
export function readCollateral(options: { collateral?: string; acceptTcbStatus?: string[] }): CollateralOptions {
  if (options.collateral === undefined) return {};
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(options.collateral, 'utf8'));
  } catch (err) {
    throw new Error(`${options.collateral}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return { collateral: parseCollateral(json), ...(options.acceptTcbStatus ? { acceptTcbStatuses: options.acceptTcbStatus } : {}) };
}

/** What the collateral said, or what could not be checked without it. */
export function collateralLines(result: { notChecked: readonly string[]; collateral?: CollateralVerdict }): string[] {
  const c = result.collateral;
  if (!c) return [`not checked offline: ${result.notChecked.join(', ')} (give --collateral)`];
  return [
    `TCB status ${c.tcbStatus} (quoting ` +
      `enclave ${c.qeTcbStatus})${c.advisoryIds.length ? `, advisories ${c.advisoryIds.join(', ')}` : ''}; not revoked`,
    `collateral for FMSPC ${c.fmspc} current until ${c.validUntil}`,
  ];
}

function verifyFile(
  file: string,
  expected: QuoteExpectations,
  at: Date,
  collateral: CollateralOptions,
  options: Output,
): { exitCode: number; output: string } {
  let result: QuoteVerification;
  try {
    result = verifyQuote(fs.readFileSync(file), { at, expected, ...collateral });
  } catch (err) {
    return unchecked(err instanceof Error ? err.message : String(err));
  }
  const value = { ...result, verifiedAt: at.toISOString() };
  let text: string;
  if (result.ok) {
    const q = result.quote;
    text = [
      `quote verified at ${at.toISOString()}: version ${q.version}, ${q.teeType.toUpperCase()}, chain to the pinned Intel SGX Root CA`,
      ...identityLines(q),
      `report data ${q.reportData}`,
      ...collateralLines(result),
    ].join('\n');
  } else {
    text = `quote NOT verified: check ${result.failedCheck} failed: ${result.reason}`;
  }
  return { exitCode: result.ok ? ATTEST_EXIT.verified : ATTEST_EXIT.failed, output: options.json ? JSON.stringify(value, null, 2) : text };
}

async function verifyUrl(
  url: string,
  expected: QuoteExpectations,
  at: Date,
  collateral: CollateralOptions,
  options: Output,
): Promise<{ exitCode: number; output: string }> {
  let result: ServerVerification;
  try {
    // No trust anchor option: the CLI always verifies against the pinned Intel SGX Root CA.
    const { reportData: _unused, ...identity } = expected;
    result = await verifyServer(url, { at, expected: identity, ...collateral });
  } catch (err) {
    if (err instanceof ServerUnreachable || err instanceof TypeError) return unchecked(err.message);
    throw err;
  }
  const value = { ...result, url, verifiedAt: at.toISOString() };
  let text: string;
  if (result.ok) {
    const q = result.quote;
    const raTls = result.certificate.raTls;
    text = [
      `server verified at ${at.toISOString()}: ${url}`,
      `a fresh quote binds this connection's TLS key and nonce: version ${q.version}, ${q.teeType.toUpperCase()}, ` +
        'chain to the pinned Intel SGX Root CA',
      raTls
        ? `RA-TLS certificate verified: ${raTls.map((e) => e.format).join(', ')}`
        : 'the certificate carries no RA-TLS evidence; the fresh quote binds its key',
      ...identityLines(q),
      `TLS key SPKI SHA-256 ${result.certificate.spkiSha256}`,
      `certificate SHA-256 ${result.certificate.fingerprint256} (pin it to keep talking to this enclave)`,
      ...collateralLines(result),
    ].join('\n');
  } else {
    text = `server NOT verified: check ${result.failedCheck} failed: ${result.reason}`;
  }
  return { exitCode: result.ok ? ATTEST_EXIT.verified : ATTEST_EXIT.failed, output: options.json ? JSON.stringify(value, null, 2) : text };
}

/** Adds `attest` and its `verify`; returns `attest` for the commands of other files. */
export function addAttestCommands(program: Command): Command {
  const attest = program.command('attest').description('attestation evidence, checked on this machine');
  attest
    .command('verify')
    .description(
      'verify an Intel DCAP quote file offline (TCB status and revocation with --collateral), or attest a running server over one ' +
        'TLS connection; ' +
        'exit 0 verified, 1 a check failed, 2 unchecked',
    )
    .addOption(new Option('--quote <file>', 'the quote, binary'))
    .addOption(new Option('--url <url>', 'attest the server at https://host:port: its TLS key, a fresh nonce, RA-TLS evidence if any'))
    .addOption(new Option('--mrenclave <hex>', 'expected MRENCLAVE (64 hex digits)'))
    .addOption(new Option('--mrsigner <hex>', 'expected MRSIGNER (64 hex digits)'))
    .addOption(new Option('--isv-prod-id <n>', 'expected ISV prod id'))
    .addOption(new Option('--min-isv-svn <n>', 'smallest acceptable ISV SVN'))
    .addOption(new Option('--report-data <hex>', 'expected report data (128 hex digits; --quote only)'))
    .addOption(new Option('--allow-debug', 'accept a debug enclave (its memory is readable by its host)'))
    .addOption(
      new Option(
        '--collateral <file>',
        "Intel's collateral for the quote's platform, JSON as dcap-qvl writes it: checks TCB status, revocation, QE identity",
      ),
    )
    .addOption(
      new Option(
        '--accept-tcb-status <status...>',
        'TCB statuses accepted with --collateral (default UpToDate), e.g. UpToDate SWHardeningNeeded',
      ),
    )
    .addOption(new Option('--at <time>', 'verification time, ISO 8601 (default: now)'))
    .addOption(new Option('--json', 'print JSON'))
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : ATTEST_EXIT.unchecked))
    .action(async (options: AttestVerifyOptions) => {
      const { exitCode, output } = await attestVerify(options, new Date());
      (exitCode === ATTEST_EXIT.unchecked ? process.stderr : process.stdout).write(`${output}\n`);
      process.exitCode = exitCode;
    });
  return attest;
}
