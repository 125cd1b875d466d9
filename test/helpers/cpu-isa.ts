// The addon's float32 kernels and noise sampler have a variant per instruction set and run the widest
// the machine has; BASTION_MAX_CPU_ISA (avx512, avx2 or baseline) caps it, so that tests run each
// variant on one machine. The addon reads it as it works (per batch, per draw, and when a trainer's
// noise streams are created), so the cap holds for whatever the body does.
export function withMaxIsa<T>(isa: string, body: () => T): T {
  process.env.BASTION_MAX_CPU_ISA = isa;
  try {
    return body();
  } finally {
    delete process.env.BASTION_MAX_CPU_ISA;
  }
}
