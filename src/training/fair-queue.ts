// The training queue, fair between principals: one FIFO per principal, served round-robin. Taking a
// job moves its principal to the back of the rotation, so with P principals waiting, a principal's
// next job starts after at most P − 1 jobs of others, however many each of them queued.
export interface FairQueue {
  /** Queues `id` behind the principal's other jobs (a principal new to the rotation joins at its back). */
  push(id: string, principalId: string): void;
  /** The next job: the oldest of the principal at the front of the rotation; undefined when empty. */
  shift(): string | undefined;
  /** Removes a queued job; false if it was not queued. */
  remove(id: string): boolean;
  has(id: string): boolean;
  readonly size: number;
}

export function createFairQueue(): FairQueue {
  // Map iteration order is insertion order: the rotation.
  const byPrincipal = new Map<string, string[]>();
  const ownerOf = new Map<string, string>();
  return {
    push(id, principalId) {
      if (ownerOf.has(id)) return;
      ownerOf.set(id, principalId);
      const jobs = byPrincipal.get(principalId);
      if (jobs) jobs.push(id);
      else byPrincipal.set(principalId, [id]);
    },
    shift() {
      const next = byPrincipal.entries().next();
      if (next.done) return undefined;
      const [principalId, jobs] = next.value;
      const id = jobs.shift()!;
      ownerOf.delete(id);
      byPrincipal.delete(principalId);
      if (jobs.length > 0) byPrincipal.set(principalId, jobs);
      return id;
    },
    remove(id) {
      const principalId = ownerOf.get(id);
      if (principalId === undefined) return false;
      ownerOf.delete(id);
      const jobs = byPrincipal.get(principalId)!;
      jobs.splice(jobs.indexOf(id), 1);
      if (jobs.length === 0) byPrincipal.delete(principalId);
      return true;
    },
    has: (id) => ownerOf.has(id),
    get size() {
      return ownerOf.size;
    },
  };
}
