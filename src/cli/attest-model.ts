// `bastion attest verify-model`: checks offline that a model file is the one a training certificate names,
// that the certificate's signature holds, and that an enclave quote (the certificate's own, or --quote)
// binds the signing key and states the enclave the caller pins. Exit codes as `attest verify`.

import fs from 'node:fs';
import { type Command, Option } from 'commander';
import { type CertificateVerification, verifyTrainingCertificate } from '../enclave/training-certificate.js';
import { ATTEST_EXIT, collateralLines, readCollateral } from './attest.js';
import type { Output } from './common.js';

export interface VerifyModelOptions extends Output {
  model: string;
  certificate: string;
  quote?: string;
  mrenclave?: string;
  mrsigner?: string;
  allowDebug?: boolean;
  allowDevelopment?: boolean;
  collateral?: string;
  acceptTcbStatus?: string[];
  /** ISO 8601 time; the clock when absent. */
  at?: string;
}

function describe(result: CertificateVerification & { ok: true }, at: Date): string {
  const s = result.statement;
  const dp = s.private
    ? `DP-SGD: σ ${s.noiseMultiplier}, q ${s.sampleRate}, C ${s.maxGradNorm} (${s.clipping}), ${s.steps} ` +
      `steps, ε ${s.epsilon} at δ ${s.delta} (${s.accountant})`
    : `not private: ${s.steps} steps without noise`;
  const lines = [
    `model ${s.modelId}: SHA-256 ${s.modelSha256} matches the certificate, signature verified`,
    `trained by training ${s.trainingId} from model ${s.sourceModelId} ` +
      `(SHA-256 ${s.sourceModelSha256}) on ${s.datasets.map((d) => d.id).join(', ')}`,
    dp,
    `server code ${s.codeVersion}, finished ${s.finishedAt}`,
  ];
  if (result.attested) {
    const id = result.quote.identity!;
    lines.push(
      `attested: the key is bound by a quote verified at ${at.toISOString()} to the pinned Intel SGX Root CA`,
      `MRENCLAVE ${id.mrenclave}`,
      `MRSIGNER ${id.mrsigner}`,
      ...collateralLines(result),
    );
  } else {
    lines.push('NOT attested: signed outside an enclave by the development key (accepted because of --allow-development)');
  }
  return lines.join('\n');
}

/** The command's work without commander: the exit code and the text to print. */
export function attestVerifyModel(options: VerifyModelOptions, now: Date): { exitCode: number; output: string } {
  const at = options.at === undefined ? now : new Date(options.at);
  if (Number.isNaN(at.getTime()))
    return { exitCode: ATTEST_EXIT.unchecked, output: `bastion: attest verify-model: --at ${options.at} is not a date` };
  let result: CertificateVerification;
  try {
    const model = fs.readFileSync(options.model);
    let certificate: unknown;
    try {
      certificate = JSON.parse(fs.readFileSync(options.certificate, 'utf8'));
    } catch (err) {
      if (err instanceof SyntaxError) throw new Error(`${options.certificate} is not JSON: ${err.message}`);
      throw err;
    }
    result = verifyTrainingCertificate(certificate, {
      model,
      at,
      ...(options.quote !== undefined ? { quote: fs.readFileSync(options.quote) } : {}),
      expected: {
        ...(options.mrenclave !== undefined ? { mrenclave: options.mrenclave } : {}),
        ...(options.mrsigner !== undefined ? { mrsigner: options.mrsigner } : {}),
        allowDebug: options.allowDebug ?? false,
      },
      allowDevelopment: options.allowDevelopment ?? false,
      ...readCollateral(options),
    });
  } catch (err) {
    return { exitCode: ATTEST_EXIT.unchecked, output: `bastion: attest verify-model: ${err instanceof Error ? err.message : String(err)}` };
  }
  const text = result.ok ? describe(result, at) : `model NOT verified: check ${result.failedCheck} failed: ${result.reason}`;
  return {
    exitCode: result.ok ? ATTEST_EXIT.verified : ATTEST_EXIT.failed,
    output: options.json ? JSON.stringify({ ...result, verifiedAt: at.toISOString() }, null, 2) : text,
  };
}

export function addVerifyModelCommand(attest: Command): void {
  attest
    .command('verify-model')
    .description(
      'verify a trained model file against its training certificate and the enclave quote binding the signing key; exit 0 verified, ' +
        '1 a check failed, 2 unchecked',
    )
    .addOption(new Option('--model <file>', 'the trained model file, as downloaded').makeOptionMandatory())
    .addOption(new Option('--certificate <file>', 'the certificate JSON (bastion models certificate <id>)').makeOptionMandatory())
    .addOption(new Option('--quote <file>', "the quote binding the signing key, binary (default: the certificate's keyQuote)"))
    .addOption(new Option('--mrenclave <hex>', 'expected MRENCLAVE (64 hex digits)'))
    .addOption(new Option('--mrsigner <hex>', 'expected MRSIGNER (64 hex digits)'))
    .addOption(new Option('--allow-debug', 'accept a debug enclave (its memory is readable by its host)'))
    .addOption(new Option('--allow-development', 'accept a certificate signed outside an enclave (signed, but attested by nothing)'))
    .addOption(
      new Option(
        '--collateral <file>',
        "Intel's collateral for the quote's platform (as for attest verify): TCB status and revocation too",
      ),
    )
    .addOption(new Option('--accept-tcb-status <status...>', 'TCB statuses accepted with --collateral (default UpToDate)'))
    .addOption(new Option('--at <time>', 'verification time of the quote, ISO 8601 (default: now)'))
    .addOption(new Option('--json', 'print JSON'))
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : ATTEST_EXIT.unchecked))
    .action((options: VerifyModelOptions) => {
      const { exitCode, output } = attestVerifyModel(options, new Date());
      (exitCode === ATTEST_EXIT.unchecked ? process.stderr : process.stdout).write(`${output}\n`);
      process.exitCode = exitCode;
    });
}
