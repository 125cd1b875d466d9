// A failed check of attestation evidence: the check's stable name (what a caller branches on and a CLI
// prints) and the reason in words. Verifiers throw it from deep inside a parse and turn it into their
// `{ ok: false, failedCheck, reason }` result at the top; nothing else is ever caught as one.
export class CheckFailure<C extends string = string> extends Error {
  constructor(
    readonly check: C,
    message: string,
  ) {
    super(message);
  }
}

export function failCheck<C extends string>(check: C, reason: string): never {
  throw new CheckFailure(check, reason);
}
