// The benchmark machine in one line, for the tables the benchmarks print: speed targets are compared
// only within one sitting on one machine, and a shared VM's model name alone ("AMD EPYC") does not say
// which core generation or instruction sets ran (they decide the addon's kernels, cpu_isa.h).
import fs from 'node:fs';
import os from 'node:os';

/** The first processor's entry in /proc/cpuinfo, or null where there is none. */
function firstProcessor(): string | null {
  try {
    return fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n\n')[0] ?? '';
  } catch {
    return null;
  }
}

const field = (info: string, name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(info)?.[1]?.trim() ?? '';

/** The CPU's feature flags as /proc/cpuinfo names them ("avx2", "vaes", ...); empty where it cannot be read. */
export function cpuFlags(info: string = firstProcessor() ?? ''): Set<string> {
  return new Set(field(info, 'flags').split(/\s+/).filter(Boolean));
}

/** e.g. "AMD EPYC (AuthenticAMD family 25 model 17; AVX-512, VAES), 2 CPUs", from /proc/cpuinfo where there is one. */
export function describeCpu(): string {
  const cpus = `${os.availableParallelism()} CPUs`;
  const info = firstProcessor();
  if (info === null) return `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${cpus}`;
  const flags = cpuFlags(info);
  const sets = [
    flags.has('avx512f') ? 'AVX-512' : flags.has('avx2') ? 'AVX2' : 'no AVX2',
    ...(flags.has('vaes') ? ['VAES'] : []),
    ...(flags.has('amx_tile') ? ['AMX'] : []),
  ];
  const family = field(info, 'cpu family');
  const where = family ? `${field(info, 'vendor_id')} family ${family} model ${field(info, 'model')}; ` : '';
  return `${field(info, 'model name') || os.cpus()[0]?.model || 'unknown CPU'} (${where}${sets.join(', ')}), ${cpus}`;
}
