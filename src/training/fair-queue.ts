// The training queue, fair between principals: one FIFO per principal, and the next job is the oldest
// of the principal served least recently (a principal never served comes first; ties go to the one
// that has waited longest). So with P principals waiting, a principal's next job starts after at most
// P − 1 jobs of others, however many each of them queued, and one that just got a job waits its turn.
export interface FairQueue {
  /** Queues `id` behind the principal's other jobs (a principal new to the rotation joins at its back). */
  push(id: string, principalId: string): void;
  /** The next job: the oldest of the principal served least recently; undefined when empty. */
  shift(): string | undefined;
  /** Removes a queued job; false if it was not queued. */
  remove(id: string): boolean;
  has(id: string): boolean;
  readonly size: number;
}

export function createFairQueue(): FairQueue {
  // Map iteration order is insertion order: principals by how long they have waited.
  const byPrincipal = new Map<string, string[]>();
  const ownerOf = new Map<string, string>();
  /** When each principal was last served (a counter); absent: never. */
  const servedAt = new Map<string, number>();
  let served = 0;
  return {
    push(id, principalId) {
      if (ownerOf.has(id)) return;
      ownerOf.set(id, principalId);
      const jobs = byPrincipal.get(principalId);
      if (jobs) jobs.push(id);
      else byPrincipal.set(principalId, [id]);
    },
    shift() {
      let pick: string | undefined;
      for (const principalId of byPrincipal.keys()) {
        if (pick === undefined || (servedAt.get(principalId) ?? -1) < (servedAt.get(pick) ?? -1)) pick = principalId;
      }
      if (pick === undefined) return undefined;
      const jobs = byPrincipal.get(pick)!;
      const id = jobs.shift()!;
      ownerOf.delete(id);
      served += 1;
      servedAt.set(pick, served);
      byPrincipal.delete(pick);
      if (jobs.length > 0) byPrincipal.set(pick, jobs);
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
