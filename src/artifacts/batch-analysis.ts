// Batch independence and data-free control flow of a model's inlined forward graph, established
// statically at upload (DESIGN.md, "Who is trusted with what"). It protects two invariants the DP
// accountant rests on: (1) sample i's output, loss and gradient depend on sample i alone (and on
// public values), so clipping bounds what one record can move; (2) nothing computed from a record's
// values, nor the private number of samples B in a Poisson batch, steers control flow, reaches a
// Python number, or shapes a tensor other than as the batch dimension itself.
//
// How: an abstract interpretation over the graph that the sandbox serialised (addon
// core/graph_json.cc). Every forward input is a tensor whose dimension 0 is the batch; each value
// gets an abstract value: tensors carry their symbolic shape and where the batch sits in it (or none,
// for public tensors: parameters, constants, values computed from them); integers are monomials over
// symbols (public sizes, module attributes, and B, the batch size) or opaque; conditions that are
// known at analysis time (ranks, None checks, module attributes) choose their branch. One table,
// `batchRules`, says for each operator how its output's batch dimension follows from its inputs'
// and which uses combine samples (reductions, scans, products or indexing over the batch
// dimension, reshapes that mix it); an allowed operator without a rule is refused the moment a
// batched tensor or a B-derived number reaches it ("cannot establish"), never guessed. The table
// sits next to the operator allowlist (operator-policy.ts), and a test keeps the two in step.
//
// Ranks: a TorchScript graph does not say how many dimensions its inputs have, and the meaning of
// dim=-1, of conv2d on a 3-D tensor or of x.squeeze() depends on it. So the analysis runs once per
// candidate input rank (1 to MAX_INPUT_RANK for each input) and reports, per rank, what it refuses;
// the upload is refused when no rank is free of problems, and a training or evaluation is refused
// (before anything is charged) when its datasets' inputs have a rank the model was refused at.
//
// Graph JSON (core/graph_json.cc): {in: [[id, type]], nodes: [Node], out: [id]}; Node = {k: kind,
// in: [id], out: [[id, type]], loc?: "file:line", value?: constant or resolved attribute, attr?:
// attribute name (prim::GetAttr), blocks?: [{in: [[id, type]], nodes: [Node], out: [id]}]}.
// Constants: null, booleans, numbers, strings, arrays, {tensor: shape}, {device: name}, {other: tag}.

/** Largest input rank tried; datasets of higher rank are refused with a message saying so. */
export const MAX_INPUT_RANK = 5;
/** Forwards with more inputs are analysed only with every input at the same rank (bounds the runs). */
const MAX_RANK_PRODUCT_INPUTS = 2;
/** Passes over a loop body before its carried values are widened to unknown. */
const MAX_LOOP_PASSES = 6;

export interface BatchProblem {
  /** The operator (node kind) the problem is about. */
  operator: string;
  /** "file:line" in the archive's serialized source; empty when unknown. */
  location: string;
  /** 'batch-mixing': combines samples or cannot be shown not to; 'data-control-flow': data or B steers the program. */
  rule: 'batch-mixing' | 'data-control-flow';
  message: string;
}

/** Problems per tried input-rank tuple, keyed "r0,r1,..." (one rank per forward input). */
export interface BatchAnalysis {
  inputs: number;
  ranks: Record<string, BatchProblem[]>;
}

// --- Graph JSON ------------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
interface GraphNode {
  k: string;
  in: number[];
  out: [number, string][];
  loc?: string;
  value?: Json;
  attr?: string;
  blocks?: GraphBlock[];
}
interface GraphBlock {
  in: [number, string][];
  nodes: GraphNode[];
  out: number[];
}
interface GraphJson {
  in: [number, string][];
  nodes: GraphNode[];
  out: number[];
}

// --- Abstract values -------------------------------------------------------------------------------

/** coef × Π syms (a multiset, sorted). 'B' is the private batch size; '#…' symbols are public. */
interface Mono {
  coef: number;
  syms: string[];
}
const BATCH = 'B';

/** An integer: a monomial when known, else opaque; `batch` when derived from B. */
interface IntVal {
  t: 'int';
  m: Mono | null;
  batch: boolean;
}
/** A known public scalar other than an int: bool, float, string, None, device. */
interface ConstVal {
  t: 'const';
  v: Json;
}
/** An unknown scalar (bool, float, string): public unless `batch`. */
interface ScalarVal {
  t: 'scalar';
  batch: boolean;
}
interface ListVal {
  t: 'list';
  /** Known items, or null once the list was mutated or its length is unknown. */
  items: Abs[] | null;
  /** Join of every item it may hold. */
  elem: Abs | null;
}
/** Where the batch sits in a tensor: dims[dim] = P·B·Q, sample index = (i // Q) mod B. */
interface BatchAt {
  dim: number;
  inner: Mono;
}
interface TensorVal {
  t: 'tensor';
  /** Symbolic sizes; null when the rank is unknown. */
  dims: IntVal[] | null;
  /** null: public (independent of the samples). */
  batch: BatchAt | null;
  /** A 0-dim tensor holding this integer (prim::NumToTensor: traced shape arithmetic). */
  scalar?: IntVal;
  /** Set when the analysis already refused how this value was made: no further problems from it. */
  poisoned?: boolean;
}
interface OtherVal {
  t: 'other';
  batch: boolean;
}
type Abs = IntVal | ConstVal | ScalarVal | ListVal | TensorVal | OtherVal;

const OTHER: OtherVal = { t: 'other', batch: false };

let freshCounter = 0;
function fresh(batch = false): IntVal {
  freshCounter += 1;
  return { t: 'int', m: { coef: 1, syms: [`#${freshCounter}`] }, batch };
}
function constInt(n: number): IntVal {
  return { t: 'int', m: { coef: n, syms: [] }, batch: false };
}
function mono(m: Mono): IntVal {
  return { t: 'int', m, batch: m.syms.includes(BATCH) };
}
function opaqueInt(batch: boolean): IntVal {
  return { t: 'int', m: null, batch };
}
function monoMul(a: Mono, b: Mono): Mono {
  return { coef: a.coef * b.coef, syms: [...a.syms, ...b.syms].sort() };
}
/** a / b when exact as monomials, else null. */
function monoDiv(a: Mono, b: Mono): Mono | null {
  if (b.coef === 0 || a.coef % b.coef !== 0) return null;
  const rest = [...a.syms];
  for (const s of b.syms) {
    const i = rest.indexOf(s);
    if (i < 0) return null;
    rest.splice(i, 1);
  }
  return { coef: a.coef / b.coef, syms: rest };
}
function monoEq(a: Mono | null, b: Mono | null): boolean {
  return a !== null && b !== null && a.coef === b.coef && a.syms.length === b.syms.length && a.syms.every((s, i) => s === b.syms[i]!);
}
function batchPower(m: Mono): number {
  return m.syms.filter((s) => s === BATCH).length;
}
const ONE: Mono = { coef: 1, syms: [] };

function knownInt(v: Abs | undefined): number | null {
  if (v?.t === 'int' && v.m && v.m.syms.length === 0) return v.m.coef;
  if (v?.t === 'tensor' && v.scalar?.m && v.scalar.m.syms.length === 0) return v.scalar.m.coef;
  return null;
}
function knownConst(v: Abs | undefined): { v: Json } | null {
  if (v?.t === 'const') return { v: v.v };
  const n = knownInt(v);
  return n === null ? null : { v: n };
}
/** Whether a non-tensor value carries B (the private batch size). */
function carriesBatch(v: Abs | undefined): boolean {
  if (!v) return false;
  switch (v.t) {
    case 'int':
    case 'scalar':
    case 'other':
      return v.batch;
    case 'list':
      return (v.items ?? []).some(carriesBatch) || carriesBatch(v.elem ?? undefined);
    case 'tensor':
      return v.scalar?.batch ?? false;
    default:
      return false;
  }
}
function isBatched(v: Abs | undefined): v is TensorVal {
  return v?.t === 'tensor' && v.batch !== null;
}
function publicTensor(dims: IntVal[] | null): TensorVal {
  return { t: 'tensor', dims, batch: null };
}
function rankOf(v: TensorVal): number | null {
  return v.dims ? v.dims.length : null;
}

function join(a: Abs | undefined, b: Abs | undefined): Abs {
  if (!a) return b ?? OTHER;
  if (!b) return a;
  if (a.t === 'other' && !a.batch) return b; // prim::Uninitialized and the like
  if (b.t === 'other' && !b.batch) return a;
  if (a.t === 'int' && b.t === 'int') return monoEq(a.m, b.m) ? a : opaqueInt(a.batch || b.batch);
  if (a.t === 'const' && b.t === 'const') return JSON.stringify(a.v) === JSON.stringify(b.v) ? a : { t: 'scalar', batch: false };
  if (a.t === 'tensor' && b.t === 'tensor') return joinTensors(a, b);
  if (a.t === 'list' && b.t === 'list') {
    const items = a.items && b.items && a.items.length === b.items.length ? a.items.map((x, i) => join(x, b.items![i]!)) : null;
    return { t: 'list', items, elem: joinOptional(a.elem, b.elem) };
  }
  return { t: 'scalar', batch: carriesBatch(a) || carriesBatch(b) || isBatched(a) || isBatched(b) };
}
function joinOptional(a: Abs | null, b: Abs | null): Abs | null {
  return a && b ? join(a, b) : (a ?? b);
}
function joinTensors(a: TensorVal, b: TensorVal): TensorVal {
  const dims =
    a.dims && b.dims && a.dims.length === b.dims.length
      ? a.dims.map((d, i) => (monoEq(d.m, b.dims![i]!.m) ? d : opaqueInt(d.batch || b.dims![i]!.batch)))
      : null;
  const poisoned = a.poisoned || b.poisoned;
  if (!a.batch && !b.batch) return { t: 'tensor', dims, batch: null, ...(poisoned ? { poisoned } : {}) };
  const sa = a.batch;
  const sb = b.batch;
  if (sa && sb && sa.dim === sb.dim && monoEq(sa.inner, sb.inner) && dims) {
    const d = a.dims![sa.dim]!;
    const e = b.dims![sb.dim]!;
    dims[sa.dim] = monoEq(d.m, e.m) ? d : mono(monoMul({ coef: 1, syms: [BATCH] }, fresh().m!));
    return { t: 'tensor', dims, batch: sa, ...(poisoned ? { poisoned } : {}) };
  }
  // One side public: the result may be the batched one; keep its layout when the ranks agree.
  const batched = sa ? a : b;
  const other = sa ? b : a;
  if (!(sa && sb) && batched.dims && other.dims && other.dims.length === batched.dims.length) {
    return { ...batched, ...(poisoned ? { poisoned } : {}) };
  }
  if (!poisoned) current?.mixing('gives the batch dimension different places on different paths (branches or loop iterations)');
  return poisonedTensor();
}

// --- The analysis ----------------------------------------------------------------------------------

/**
 * Operators whose tensor result is always an object they create, never one of their inputs (views
 * included: each makes a new tensor). Ops that may hand an input back (contiguous, to, dropout, flatten,
 * reshape, ...) are not listed.
 */
const CREATES: ReadonlySet<string> = new Set([
  'aten::linear',
  'aten::layer_norm',
  'aten::add',
  'aten::sub',
  'aten::mul',
  'aten::matmul',
  'aten::bmm',
  'aten::transpose',
  'aten::permute',
  'aten::embedding',
]);

class Analysis {
  readonly problems: BatchProblem[] = [];
  private readonly seen = new Set<string>();
  readonly env = new Map<number, Abs>();
  /** Value id → the id of the value it is known to be (forwarded through casts and decided branches), for `is`. */
  readonly same = new Map<number, number>();
  /** Tensors their node creates (CREATES), for `is`. */
  readonly created = new Set<number>();
  /**
   * Lists built empty and then only given distinct created tensors, each appended once (not in a loop
   * body or undecided branch): the values appended so far, or null once anything else touched the list.
   */
  readonly freshLists = new Map<number, number[] | null>();
  /** Elements unpacked from such a list: the unpacking node's first output, and the list's appended values. */
  readonly elements = new Map<number, { unpack: number; appended: number[] }>();
  /** The forward's tensor inputs: objects that exist before any node runs. */
  readonly inputs = new Set<number>();
  /** Loop bodies and undecided branches being analysed: their nodes may run any number of times. */
  private uncertain = 0;
  node: GraphNode | null = null;
  /** The first node at which a poisoned value was made (see poisonedTensor). */
  poisonSite: GraphNode | null = null;

  canonical(id: number): number {
    return this.same.get(id) ?? id;
  }

  /** Whether the node being analysed runs exactly once per forward. */
  certain(): boolean {
    return this.uncertain === 0;
  }

  /**
   * Whether two values are always different objects, so that `x is y` is false (nn.MultiheadAttention's
   * `query is key` in cross-attention): both created by their nodes; one created and the other one of
   * the forward's inputs, which exist before any node runs; or elements of a list of distinct created
   * tensors. Mirrors the engine's branch folding (core/dp/branch_folding.cc).
   */
  distinct(x: number, y: number): boolean {
    const [a, b] = [this.canonical(x), this.canonical(y)];
    return a !== b && (this.distinctOrdered(a, b) || this.distinctOrdered(b, a));
  }

  private distinctOrdered(a: number, b: number): boolean {
    const listB = this.elements.get(b);
    if (this.created.has(a)) return this.created.has(b) || this.inputs.has(b) || (listB !== undefined && !listB.appended.includes(a));
    const listA = this.elements.get(a);
    if (!listA) return false;
    if (this.inputs.has(b)) return true;
    if (listB && listB.unpack === listA.unpack) return true; // two elements of the same unpacking
    return this.created.has(b) && !listA.appended.includes(b);
  }

  /** Records which values are created objects and elements of lists of them, once node's outputs are known. */
  private noteIdentity(node: GraphNode): void {
    node.in.forEach((id, i) => {
      const appended = this.freshLists.get(id);
      if (!appended || node.k === 'prim::ListUnpack') return;
      const value = this.canonical(node.in[1] ?? -1);
      const once = node.k === 'aten::append' && i === 0 && this.certain() && this.created.has(value) && !appended.includes(value);
      this.freshLists.set(id, once ? [...appended, value] : null);
    });
    if (node.k === 'prim::ListConstruct' && node.in.length === 0 && node.out.length === 1) this.freshLists.set(node.out[0]![0], []);
    const appended = node.k === 'prim::ListUnpack' ? this.freshLists.get(node.in[0]!) : null;
    if (appended && node.out.length > 0) {
      for (const [id] of node.out) this.elements.set(id, { unpack: node.out[0]![0], appended });
    }
    if (CREATES.has(node.k) && node.out.length === 1 && node.out[0]![1] === 'Tensor') this.created.add(node.out[0]![0]);
  }

  problem(rule: BatchProblem['rule'], message: string): void {
    const node = this.node!;
    const key = `${node.k}|${node.loc ?? ''}|${message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    const where = node.loc ? ` at ${node.loc}` : '';
    this.problems.push({ operator: node.k, location: node.loc ?? '', rule, message: `${node.k}${where} ${message}` });
  }
  mixing(message: string): void {
    this.problem('batch-mixing', message);
  }
  flow(message: string): void {
    this.problem('data-control-flow', message);
  }

  get(id: number): Abs {
    return this.env.get(id) ?? OTHER;
  }

  block(block: GraphBlock): Abs[] {
    for (const node of block.nodes) this.visit(node);
    return block.out.map((id) => this.get(id));
  }

  visit(node: GraphNode): void {
    this.node = node;
    const inputs = node.in.map((id) => this.get(id));
    if (!this.poisonSite && !structural.has(node.k) && inputs.some((v) => hasPoison(v))) this.poisonSite = node;
    let outputs: Abs[];
    if (node.k === 'prim::If') outputs = this.visitIf(node, inputs);
    else if (node.k === 'prim::Loop') outputs = this.visitLoop(node, inputs);
    else outputs = this.apply(node, inputs);
    if ((node.k === 'prim::unchecked_cast' || node.k === 'prim::unchecked_unwrap_optional') && node.out[0]!) {
      this.same.set(node.out[0]![0]!, this.canonical(node.in[0]!));
    }
    node.out.forEach(([id, type], i) => {
      this.env.set(id, outputs[i]! ?? fromType(type));
    });
    this.noteIdentity(node);
  }

  visitIf(node: GraphNode, inputs: Abs[]): Abs[] {
    const blocks = node.blocks ?? [];
    const cond = inputs[0]!;
    const known = knownConst(cond);
    if (known && typeof known.v === 'boolean' && blocks.length === 2) {
      const taken = blocks[known.v ? 0 : 1]!;
      const outs = this.block(taken);
      this.node = node;
      node.out.forEach(([id], i) => {
        this.same.set(id, this.canonical(taken.out[i]!));
      });
      return outs;
    }
    if (isBatched(cond) || carriesBatch(cond)) {
      this.flow(
        isBatched(cond)
          ? 'branches on a value computed from the samples: control flow may depend only on public information'
          : 'branches on the number of samples in the batch, which is private under Poisson sampling',
      );
    }
    this.uncertain += 1;
    const results = blocks.map((b) => this.block(b));
    this.uncertain -= 1;
    this.node = node;
    node.out.forEach(([id], i) => {
      const sources = new Set(blocks.map((b) => this.canonical(b.out[i]!)));
      if (sources.size === 1) this.same.set(id, [...sources][0]!);
    });
    return node.out.map((_, i) => results.map((r) => r[i]!).reduce<Abs | undefined>((acc, v) => join(acc, v), undefined) ?? OTHER);
  }

  visitLoop(node: GraphNode, inputs: Abs[]): Abs[] {
    const body = node.blocks?.[0];
    const [trips, cond, ...carried] = inputs;
    if (carriesBatch(trips) || carriesBatch(cond))
      this.flow('loops a number of times that depends on the number of samples in the batch, which is private');
    if (isBatched(trips) || isBatched(cond))
      this.flow('loops a number of times computed from the samples: control flow may depend only on public information');
    if (!body) return carried;
    let state = carried;
    for (let pass = 0; ; pass += 1) {
      this.env.set(body.in[0]![0]!, opaqueInt(carriesBatch(trips)));
      body.in.slice(1).forEach(([id], i) => {
        this.env.set(id, state[i]! ?? OTHER);
      });
      this.uncertain += 1;
      const out = this.block(body);
      this.uncertain -= 1;
      this.node = node;
      if (isBatched(out[0]!) || carriesBatch(out[0]!)) this.flow('loops while a condition derived from the samples or their number holds');
      const next = state.map((s, i) => join(s, out[i + 1]!));
      const stable = next.every((v, i) => JSON.stringify(v) === JSON.stringify(state[i]!));
      if (stable) return next;
      if (pass >= MAX_LOOP_PASSES) return next.map(widen);
      state = pass >= MAX_LOOP_PASSES - 1 ? next.map(widen) : next;
    }
  }

  apply(node: GraphNode, inputs: Abs[]): Abs[] {
    const scalar = scalarRules[node.k]!;
    const rule = batchRules[node.k]!;
    const tensorsIn = inputs.filter((v): v is TensorVal => v.t === 'tensor');
    const poisoned = tensorsIn.some((v) => v.poisoned);
    const batched = tensorsIn.some((v) => v.batch !== null);
    if (scalar) {
      const out = scalar(this, node, inputs);
      if (out) return out;
    }
    // An in-place write of values of the samples into a tensor that does not hold the batch would
    // leave that tensor (and every view of it) looking public while it holds a record's values
    // (zeros(1, n).add_(x) when a batch has one sample).
    const target = inputs[0];
    if (
      isInPlace(node.k) &&
      target?.t === 'tensor' &&
      !target.batch &&
      !target.poisoned &&
      inputs.slice(1).some((v) => (isBatched(v) && !v.poisoned) || carriesBatch(v))
    ) {
      this.mixing('writes values computed from the samples, in place, into a tensor that does not hold the batch');
      return node.out.map(() => poisonedTensor());
    }
    if (rule) return rule(this, node, inputs);
    if (!batched && !inputs.some(carriesBatch)) {
      // Public inputs give public outputs whatever the operator computes.
      return node.out.map(([, type]) => fromType(type));
    }
    if (!poisoned) {
      this.mixing(
        batched
          ? 'receives a batched tensor, and the analysis cannot establish that it keeps samples apart; use an operator it knows, or ' +
              'ask for this one to be added'
          : 'receives a number derived from the batch size, which is private under Poisson sampling',
      );
    }
    return node.out.map(([, type]) => (type.includes('Tensor') ? poisonedTensor() : opaqueInt(true)));
  }
}

/** aten::add_, aten::copy_, aten::masked_fill_ …: operators that write their first argument. */
function isInPlace(kind: string): boolean {
  return kind.startsWith('aten::') && kind.endsWith('_') && !kind.endsWith('__');
}

/**
 * A tensor the analysis refused or lost track of. Rules that refuse report why; as a backstop, the
 * first node that uses a poisoned value (or returns one) is remembered, and a graph whose analysis
 * used one but reported nothing is refused there ("lost track"), so a forgotten report can never
 * accept a model. Poisoned outputs nobody uses (a fused kernel's unused attention weights) are harmless.
 */
function poisonedTensor(): TensorVal {
  return { t: 'tensor', dims: null, batch: { dim: -1, inner: ONE }, poisoned: true };
}
/** Nodes that only pack, unpack or pass values on: a poisoned value through them is not yet used. */
const structural: ReadonlySet<string> = new Set([
  'prim::TupleConstruct',
  'prim::TupleUnpack',
  'prim::TupleIndex',
  'prim::ListConstruct',
  'prim::ListUnpack',
  'prim::unchecked_cast',
  'prim::unchecked_unwrap_optional',
  'aten::__getitem__',
  'aten::__is__',
  'aten::__isnot__',
]);
function hasPoison(v: Abs | undefined, depth = 0): boolean {
  if (!v || depth > 8) return false;
  if (v.t === 'tensor') return v.poisoned === true;
  if (v.t === 'list') return (v.items ?? []).some((item) => hasPoison(item, depth + 1)) || hasPoison(v.elem ?? undefined, depth + 1);
  return false;
}
let current: Analysis | null = null;
function widen(v: Abs): Abs {
  if (v.t === 'int') return monoEq(v.m, v.m) && v.m && v.m.syms.length === 0 ? opaqueInt(false) : opaqueInt(v.batch);
  if (v.t === 'list') return { t: 'list', items: null, elem: v.elem ?? join(undefined, (v.items ?? [])[0]!) };
  return v;
}

/** The abstract value of an output whose operator has no rule and only public inputs. */
function fromType(type: string): Abs {
  if (type === 'Tensor' || type === 'Tensor?' || type.startsWith('Optional[Tensor')) return publicTensor(null);
  if (type === 'int' || type === 'SymInt') return opaqueInt(false);
  if (type.startsWith('List[') || type.endsWith('[]')) return { t: 'list', items: null, elem: null };
  if (type === 'NoneType') return { t: 'const', v: null };
  if (['bool', 'float', 'str', 'number', 'Scalar', 'complex'].includes(type)) return { t: 'scalar', batch: false };
  return OTHER;
}

// --- Helpers for rules -----------------------------------------------------------------------------

type Rule = (a: Analysis, node: GraphNode, inputs: Abs[]) => Abs[];
type ScalarRule = (a: Analysis, node: GraphNode, inputs: Abs[]) => Abs[] | null;

function asTensor(v: Abs | undefined): TensorVal | null {
  return v?.t === 'tensor' ? v : null;
}
/** Normalises a dimension index against a known rank; null when unknown or out of range. */
function normDim(d: Abs | undefined, rank: number | null): number | null {
  const n = knownInt(d);
  if (n === null || rank === null) return null;
  const r = Math.max(rank, 1);
  const k = n < 0 ? n + r : n;
  return k >= 0 && k < r ? k : null;
}
function intList(v: Abs | undefined): IntVal[] | null {
  if (v?.t === 'int') return [v];
  if (v?.t !== 'list' || !v.items) return null;
  const out: IntVal[] = [];
  for (const item of v.items) {
    if (item.t === 'int') out.push(item);
    else if (item.t === 'tensor' && item.scalar) out.push(item.scalar);
    else return null;
  }
  return out;
}
function dimList(v: Abs | undefined, rank: number | null): number[] | null {
  const items = v?.t === 'int' ? [v] : v?.t === 'list' ? v.items : null;
  if (!items) return null;
  const out: number[] = [];
  for (const item of items) {
    const d = normDim(item, rank);
    if (d === null) return null;
    out.push(d);
  }
  return out;
}
/** Refuses B-derived numbers among the non-tensor arguments (other than those at `allowed`). */
function checkArguments(a: Analysis, inputs: Abs[], allowed: ReadonlySet<number> = new Set()): void {
  inputs.forEach((v, i) => {
    if (allowed.has(i)) return;
    if (v.t === 'tensor') {
      if (v.scalar?.batch) a.flow('uses the number of samples in the batch as a value, which is private under Poisson sampling');
      return;
    }
    if (carriesBatch(v))
      a.flow('takes an argument computed from the number of samples in the batch, which is private under Poisson sampling');
  });
}
function anyPoisoned(inputs: Abs[]): boolean {
  return inputs.some((v) => v.t === 'tensor' && v.poisoned);
}
function unknownOutputs(node: GraphNode, poisoned: boolean): Abs[] {
  return node.out.map(([, type]) => (poisoned && type.includes('Tensor') ? poisonedTensor() : fromType(type)));
}

/** Broadcasts tensors (and scalars) elementwise: the batch must sit at the same place from the end in every batched one. */
function broadcast(a: Analysis, tensors: TensorVal[], what = 'combines'): TensorVal {
  const batched = tensors.filter((t) => t.batch);
  if (tensors.some((t) => t.poisoned)) return poisonedTensor();
  const ranks = tensors.map(rankOf);
  const rank = ranks.every((r) => r !== null) ? Math.max(0, ...(ranks as number[])) : null;
  if (batched.length === 0) {
    if (rank === null) return publicTensor(null);
    const dims: IntVal[] = [];
    for (let k = 0; k < rank; k += 1) {
      const sizes = tensors
        .map((t) => t.dims![t.dims!.length - rank + k]!)
        .filter((s): s is IntVal => s !== undefined && knownInt(s) !== 1);
      dims.push(sizes.length === 0 ? constInt(1) : sizes.every((s) => monoEq(s.m, sizes[0]!.m)) ? sizes[0]! : fresh());
    }
    return publicTensor(dims);
  }
  if (rank === null) {
    a.mixing(`${what} a batched tensor with a tensor of unknown rank, so where the batch dimension ends up cannot be established`);
    return poisonedTensor();
  }
  const fromEnd = batched.map((t) => t.dims!.length - t.batch!.dim);
  const first = batched[0]!;
  const sameLayout = batched.every(
    (t, i) =>
      fromEnd[i]! === fromEnd[0]! &&
      monoEq(t.batch!.inner, first.batch!.inner) &&
      monoEq(t.dims![t.batch!.dim]!.m, first.dims![first.batch!.dim]!.m),
  );
  if (!sameLayout) {
    a.mixing(`${what} batched tensors whose batch dimensions do not line up, so it would combine different samples`);
    return poisonedTensor();
  }
  const dims: IntVal[] = [];
  const batchDim = rank - fromEnd[0]!;
  for (let k = 0; k < rank; k += 1) {
    if (k === batchDim) {
      dims.push(first.dims![first.batch!.dim]!);
      continue;
    }
    const sizes = tensors.map((t) => t.dims![t.dims!.length - rank + k]!).filter((s): s is IntVal => s !== undefined && knownInt(s) !== 1);
    dims.push(sizes.length === 0 ? constInt(1) : sizes.every((s) => monoEq(s.m, sizes[0]!.m)) ? sizes[0]! : fresh());
  }
  // A public operand with a size other than 1 at the batch position broadcasts only when it equals
  // B: it then pairs sample i with row i of a public tensor, which is still per sample.
  return { t: 'tensor', dims, batch: { dim: batchDim, inner: first.batch!.inner } };
}

function withDims(source: TensorVal, dims: IntVal[] | null, batchDim: number | null): TensorVal {
  if (source.poisoned) return poisonedTensor();
  if (!source.batch) return publicTensor(dims);
  if (batchDim === null || dims === null) return poisonedTensor();
  return { t: 'tensor', dims, batch: { dim: batchDim, inner: source.batch.inner } };
}

// --- Reshapes ----------------------------------------------------------------------------------------

function product(dims: IntVal[]): Mono | null {
  let acc: Mono = ONE;
  for (const d of dims) {
    if (!d.m) return null;
    acc = monoMul(acc, d.m);
  }
  return acc;
}

/**
 * Where the batch lands when `x` (batched) is reshaped to `target` (row-major order is kept): the
 * batch stays separable when some target dimension e splits as P'·B·Q' with everything before it
 * equal to what preceded the batch (times P) and everything after it equal to what followed it.
 */
function reshapeBatched(a: Analysis, x: TensorVal, targetIn: IntVal[]): TensorVal {
  const batch = x.batch!;
  const dims = x.dims!;
  const total = product(dims);
  const size = dims[batch.dim]!.m;
  const p = size ? monoDiv(size, monoMul({ coef: 1, syms: [BATCH] }, batch.inner)) : null;
  const before = product(dims.slice(0, batch.dim));
  const after = product(dims.slice(batch.dim + 1));
  const refuse = (why: string): TensorVal => {
    a.mixing(
      `reshapes a batched tensor ${why}; keep the batch dimension as it is (x.view(x.size(0), ...)), or split and merge it only as ` +
        `the outermost factor of a dimension`,
    );
    return poisonedTensor();
  };
  if (!total || !p || !before || !after) return refuse('whose shape the analysis cannot follow');
  const target = [...targetIn];
  const minus = target.findIndex((t) => knownInt(t) === -1);
  if (minus >= 0) {
    const others = product(target.filter((_, i) => i !== minus));
    const rest = others ? monoDiv(total, others) : null;
    if (!rest) return refuse('with a -1 the analysis cannot resolve');
    target[minus] = mono(rest);
  }
  const holders = target.map((t, i) => (t.m && batchPower(t.m) > 0 ? i : -1)).filter((i) => i >= 0);
  if (target.some((t) => t.m === null)) return refuse('to a shape computed in a way the analysis cannot follow');
  if (holders.length !== 1 || batchPower(target[holders[0]!]!.m!) !== 1) {
    return refuse(
      holders.length === 0 ? 'to a shape that does not contain the batch size' : 'to a shape that uses the batch size more than once',
    );
  }
  const e = holders[0]!;
  const prefix = product(target.slice(0, e))!;
  const pOut = monoDiv(monoMul(before, p), prefix);
  if (!pOut) return refuse('so that the batch is mixed with the dimensions before it');
  const qOut = monoDiv(target[e]!.m!, monoMul({ coef: 1, syms: [BATCH] }, pOut));
  if (!qOut) return refuse('so that the batch is mixed with other dimensions');
  // What follows the batch need not be checked: the element counts of input and target are equal
  // (else the reshape fails, for every batch alike), and with equal prefixes that forces
  // Q'·Π(target after e) = Q·Π(dims after the batch).
  return { t: 'tensor', dims: target, batch: { dim: e, inner: qOut } };
}

function reshape(a: Analysis, x: TensorVal, target: IntVal[] | null): TensorVal {
  if (x.poisoned) return poisonedTensor();
  if (!x.batch) {
    if (target?.some((t) => t.batch)) return createWithShape(a, target);
    return publicTensor(target ? target.map((t) => (knownInt(t) === -1 ? fresh() : t)) : null);
  }
  if (!target || !x.dims) {
    a.mixing('reshapes a batched tensor to a shape the analysis cannot follow');
    return poisonedTensor();
  }
  return reshapeBatched(a, x, target);
}

/** A tensor created with a shape: public, or "batched" (data-free) when one size is a plain multiple of B. */
function createWithShape(a: Analysis, shape: IntVal[] | null): TensorVal {
  if (!shape) return publicTensor(null);
  const holders = shape.map((s, i) => (s.batch ? i : -1)).filter((i) => i >= 0);
  if (holders.length === 0) return publicTensor(shape);
  const e = holders[0]!;
  const m = shape[e]!.m;
  if (holders.length > 1 || !m || batchPower(m) !== 1) {
    a.flow('creates a tensor whose shape depends on the number of samples other than as one batch dimension');
    return poisonedTensor();
  }
  return { t: 'tensor', dims: shape, batch: { dim: e, inner: monoDiv(m, { coef: 1, syms: [BATCH] }) ?? ONE } };
}

// --- Scalar rules: Python values, shapes, metadata, conversions ---------------------------------------

function arith(op: string, x: IntVal, y: IntVal): IntVal {
  const batch = x.batch || y.batch;
  if (op === 'mul' && x.m && y.m) return mono(monoMul(x.m, y.m));
  const xn = x.m && x.m.syms.length === 0 ? x.m.coef : null;
  const yn = y.m && y.m.syms.length === 0 ? y.m.coef : null;
  if (xn !== null && yn !== null) {
    switch (op) {
      case 'add':
        return constInt(xn + yn);
      case 'sub':
        return constInt(xn - yn);
      case 'floordiv':
        return yn === 0 ? opaqueInt(false) : constInt(Math.floor(xn / yn));
      case 'remainder':
        return yn === 0 ? opaqueInt(false) : constInt(((xn % yn) + yn) % yn);
      default:
        return opaqueInt(false);
    }
  }
  if (op === 'floordiv' && x.m && y.m) {
    const q = monoDiv(x.m, y.m);
    if (q) return mono(q);
  }
  if (op === 'remainder' && x.m && y.m && monoDiv(x.m, y.m)) return constInt(0);
  if ((op === 'add' || op === 'sub') && yn === 0) return x;
  if (op === 'add' && xn === 0) return y;
  return opaqueInt(batch);
}

function toIntVal(v: Abs | undefined): IntVal | null {
  if (v?.t === 'int') return v;
  if (v?.t === 'tensor' && v.scalar) return v.scalar;
  return null;
}

function compare(op: string, x: Abs, y: Abs): Abs {
  const cx = knownConst(x);
  const cy = knownConst(y);
  if (cx && cy && typeof cx.v !== 'object' && typeof cy.v !== 'object') {
    const [l, r] = [cx.v as number, cy.v as number];
    const v = op === 'eq' ? l === r : op === 'ne' ? l !== r : op === 'lt' ? l < r : op === 'le' ? l <= r : op === 'gt' ? l > r : l >= r;
    return { t: 'const', v };
  }
  if (cx?.v === null && cy?.v === null) return { t: 'const', v: op === 'eq' };
  // Equal monomials compare equal whatever B is: "two tensors' batch sizes are equal" is public.
  const xi = toIntVal(x);
  const yi = toIntVal(y);
  if (xi && yi && monoEq(xi.m, yi.m) && (op === 'eq' || op === 'ne' || op === 'le' || op === 'ge')) {
    return { t: 'const', v: op !== 'ne' };
  }
  if (x.t === 'list' && y.t === 'list' && x.items && y.items && (op === 'eq' || op === 'ne')) {
    if (x.items.length !== y.items.length) return { t: 'const', v: op === 'ne' };
    const all = x.items.map((item, i) => compare('eq', item, y.items![i]!));
    if (all.every((c) => c.t === 'const' && c.v === true)) return { t: 'const', v: op === 'eq' };
    if (all.some((c) => c.t === 'const' && c.v === false)) return { t: 'const', v: op === 'ne' };
  }
  return { t: 'scalar', batch: carriesBatch(x) || carriesBatch(y) };
}

const conversionMessage =
  'turns a tensor computed from the samples into a Python number, list or text, which could steer control flow or reach an error ' +
  'message; ' +
  'only public values (parameters, constants, shapes) may be converted';

/**
 * Operators that read a tensor's metadata which the batch does not change (dtype, device, layout, flags):
 * scalars that carry nothing of the samples. The operator policy allows them with the shape readers.
 */
export const TENSOR_FLAG_OPERATORS = [
  'prim::device',
  'prim::dtype',
  'prim::layout',
  'prim::is_cuda',
  'prim::is_cpu',
  'prim::is_nested',
  'prim::is_quantized',
  'prim::is_sparse',
  'prim::is_mkldnn',
  'prim::requires_grad',
  'aten::is_floating_point',
  'aten::is_complex',
  'aten::element_size',
  'aten::is_grad_enabled',
  'aten::is_autocast_enabled',
] as const;

/** tensor → Python value: refused on anything computed from the samples. */
const convert: ScalarRule = (a, node, inputs) => {
  const x = inputs[0]!;
  if (x?.t !== 'tensor') return null; // aten::Int(float) and the like: plain scalars
  if (x.scalar) return node.out.map(() => x.scalar!);
  if (x.batch && !x.poisoned) a.flow(conversionMessage);
  return node.out.map(([, type]) => fromType(type));
};

export const scalarRules: Readonly<Record<string, ScalarRule>> = {
  'prim::Constant': (_a, node) => [constantValue(node.value ?? null)],
  'prim::GetAttr': (_a, node) => {
    // `training` is what the archive was saved with, but the trainer switches it (train() for steps,
    // eval() for evaluation), so both branches of `if self.training` run: neither may be pruned.
    if (node.attr === 'training') return [{ t: 'scalar', batch: false }];
    const v = node.value;
    if (v !== undefined) return [constantValue(v)];
    return [fromType(node.out[0]![1]!)];
  },
  'prim::ListConstruct': (_a, _node, inputs) => [
    { t: 'list', items: inputs, elem: inputs.reduce<Abs | null>((acc, v) => joinOptional(acc, v), null) },
  ],
  'prim::TupleConstruct': (_a, _node, inputs) => [{ t: 'list', items: inputs, elem: null }],
  'prim::ListUnpack': (_a, node, inputs) => unpack(node, inputs[0]!),
  'prim::TupleUnpack': (_a, node, inputs) => unpack(node, inputs[0]!),
  'prim::TupleIndex': (_a, node, inputs) => {
    const i = knownInt(inputs[1]!);
    const l = inputs[0]!;
    if (l?.t === 'list' && l.items && i !== null && l.items[i]!) return [l.items[i]!];
    return [l?.t === 'list' && l.elem ? l.elem : fromType(node.out[0]![1]!)];
  },
  'prim::unchecked_cast': (_a, _node, inputs) => [inputs[0]!],
  'prim::unchecked_unwrap_optional': (_a, _node, inputs) => [inputs[0]!],
  'prim::Uninitialized': () => [OTHER],
  'aten::__getitem__': (_a, node, inputs) => {
    const l = inputs[0]!;
    const i = knownInt(inputs[1]!);
    if (l?.t === 'list') {
      if (l.items && i !== null) {
        const k = i < 0 ? i + l.items.length : i;
        if (l.items[k]!) return [l.items[k]!];
      }
      // An index the analysis does not know may pick any item: the join of them all (a size list holds B).
      const elem =
        l.elem ??
        (l.items && l.items.length > 0
          ? l.items.reduce<Abs | undefined>((acc, v) => join(acc, v), undefined)!
          : fromType(node.out[0]![1]!));
      return [carriesBatch(inputs[1]!) ? join(elem, opaqueInt(true)) : elem];
    }
    return null;
  },
  'aten::len': (_a, _node, inputs) => {
    const l = inputs[0]!;
    if (l?.t === 'list') return [l.items ? constInt(l.items.length) : opaqueInt(carriesBatch(l))];
    if (l?.t === 'const' && typeof l.v === 'string') return [constInt(l.v.length)];
    if (l?.t === 'tensor') return [l.dims ? (l.dims[0]! ?? opaqueInt(false)) : opaqueInt(l.batch !== null)];
    return [opaqueInt(false)];
  },
  'aten::dim': (_a, _node, inputs) => {
    const t = asTensor(inputs[0]!);
    const r = t ? rankOf(t) : null;
    return [r === null ? opaqueInt(false) : constInt(r)];
  },
  'aten::size': (_a, node, inputs) => {
    const t = asTensor(inputs[0]!);
    if (!t) return null;
    if (node.in.length === 1) {
      return [t.dims ? { t: 'list', items: [...t.dims], elem: null } : { t: 'list', items: null, elem: opaqueInt(t.batch !== null) }];
    }
    const d = normDim(inputs[1]!, t.dims ? t.dims.length : null);
    if (d === null || !t.dims) return [opaqueInt(t.batch !== null)];
    return [t.dims[d]!];
  },
  'aten::numel': (_a, _node, inputs) => {
    const t = asTensor(inputs[0]!);
    const m = t?.dims ? product(t.dims) : null;
    return [m ? mono(m) : opaqueInt(t?.batch !== null)];
  },
  'prim::NumToTensor': (_a, _node, inputs) => {
    const i = toIntVal(inputs[0]!);
    return [{ t: 'tensor', dims: [], batch: null, ...(i ? { scalar: i } : {}) }];
  },
  'aten::Int': convert,
  'aten::Float': convert,
  'aten::Bool': convert,
  'aten::ScalarImplicit': convert,
  'aten::IntImplicit': convert,
  'aten::FloatImplicit': convert,
  'aten::item': convert,
  'aten::is_nonzero': convert,
  'prim::tolist': convert,
  'aten::__is__': (a, node, inputs) => identity(a, node, inputs, true),
  'aten::__isnot__': (a, node, inputs) => identity(a, node, inputs, false),
  'aten::__not__': (_a, _node, inputs) => {
    const c = knownConst(inputs[0]!);
    return [typeof c?.v === 'boolean' ? { t: 'const', v: !c.v } : { t: 'scalar', batch: carriesBatch(inputs[0]!) }];
  },
  'aten::__and__': (_a, _node, inputs) => logical(inputs, (x, y) => x && y),
  'aten::__or__': (_a, _node, inputs) => logical(inputs, (x, y) => x || y),
  ...Object.fromEntries(
    ['eq', 'ne', 'lt', 'le', 'gt', 'ge'].map((op) => [
      `aten::${op}`,
      ((_a, _node, inputs) =>
        inputs.every((v) => v.t !== 'tensor' || v.scalar) ? [compare(op, inputs[0]!, inputs[1]!)] : null) as ScalarRule,
    ]),
  ),
  ...Object.fromEntries(
    ['add', 'sub', 'mul', 'floordiv', 'remainder', '__round_to_zero_floordiv', 'div'].map((op) => [
      `aten::${op}`,
      ((_a, node, inputs) => {
        const x = toIntVal(inputs[0]!);
        const y = toIntVal(inputs[1]!);
        const tensorIn = inputs.some((v) => v.t === 'tensor');
        if (tensorIn && !inputs.every((v) => v.t !== 'tensor' || v.scalar)) return null; // real tensor arithmetic
        if (!x || !y)
          return inputs.every((v) => v.t !== 'tensor')
            ? [{ ...fromType(node.out[0]![1]!), ...(inputs.some(carriesBatch) ? { batch: true } : {}) } as Abs]
            : null;
        // div on traced shape tensors: rounding_mode "trunc"/"floor" makes it a floor division of sizes.
        const mode = op === 'div' ? knownConst(inputs[2]!)?.v : null;
        const name = op === '__round_to_zero_floordiv' || (op === 'div' && (mode === 'trunc' || mode === 'floor')) ? 'floordiv' : op;
        if (op === 'div' && name === 'div')
          return tensorIn
            ? [{ t: 'tensor', dims: [], batch: null, scalar: opaqueInt(x.batch || y.batch) }]
            : [{ t: 'scalar', batch: x.batch || y.batch }];
        const r = arith(name, x, y);
        return [tensorIn ? { t: 'tensor', dims: [], batch: null, scalar: r } : r];
      }) as ScalarRule,
    ]),
  ),
  'aten::neg': (_a, _node, inputs) => {
    const x = toIntVal(inputs[0]!);
    if (!x || inputs[0]!.t === 'tensor') return null;
    return [x.m ? mono({ coef: -x.m.coef, syms: x.m.syms }) : x];
  },
  'prim::min': (_a, node, inputs) => minMax(node, inputs, Math.min),
  'prim::max': (_a, node, inputs) => minMax(node, inputs, Math.max),
  'aten::slice': (_a, _node, inputs) => {
    const l = inputs[0]!;
    if (l?.t !== 'list') return null; // tensor slicing: a batch rule
    const start = inputs[1]! && knownConst(inputs[1]!)?.v === null ? 0 : knownInt(inputs[1]!);
    const end = inputs[2]! && knownConst(inputs[2]!)?.v === null ? null : knownInt(inputs[2]!);
    const step = knownInt(inputs[3]!) ?? 1;
    if (l.items && start !== null && step === 1 && (end !== null || knownConst(inputs[2]!)?.v === null)) {
      const n = l.items.length;
      const clamp = (k: number) => Math.min(n, Math.max(0, k < 0 ? k + n : k));
      return [{ t: 'list', items: l.items.slice(clamp(start), end === null ? n : clamp(end)), elem: l.elem }];
    }
    return [
      { t: 'list', items: null, elem: l.elem ?? (l.items ? l.items.reduce<Abs | null>((acc, v) => joinOptional(acc, v), null) : null) },
    ];
  },
  'aten::list': (_a, _node, inputs) => (inputs[0]?.t === 'list' ? [{ ...inputs[0]! }] : null),
  // List mutation: the list's items become unknown, its element type the join.
  ...Object.fromEntries(
    ['aten::append', 'aten::extend', 'aten::insert', 'aten::_set_item'].map((kind) => [
      kind,
      ((a, node, inputs) => {
        const id = node.in[0]!;
        const l = inputs[0]!;
        if (l?.t !== 'list') return null;
        const added = inputs.slice(1).reduce<Abs | null>((acc, v) => joinOptional(acc, v.t === 'list' ? (v.elem ?? OTHER) : v), null);
        const base = l.items ? l.items.reduce<Abs | null>((acc, v) => joinOptional(acc, v), l.elem) : l.elem;
        // An append that runs exactly once (not in a loop body or an undecided branch) keeps the items:
        // nn.MultiheadAttention's `[x.transpose(1, 0) for x in (query, key)]`, unrolled when inlined.
        const items = kind === 'aten::append' && l.items && a.certain() ? [...l.items, inputs[1]!] : null;
        a.env.set(id, { t: 'list', items, elem: joinOptional(base, added) });
        return node.out.map(() => a.env.get(id)!);
      }) as ScalarRule,
    ]),
  ),
  // Text of a tensor computed from the samples holds its values: the same as converting it.
  'aten::format': (a, _node, inputs) => textOf(a, inputs),
  'aten::str': (a, _node, inputs) => textOf(a, inputs),
  // Tensor metadata that the batch does not change (dtype, device, flags).
  ...Object.fromEntries(
    TENSOR_FLAG_OPERATORS.map((kind) => [kind, ((_a, node) => node.out.map(() => ({ t: 'scalar', batch: false }) as Abs)) as ScalarRule]),
  ),
  // Error paths: the trainer never relays their text, so what they format does not matter.
  'prim::RaiseException': () => [],
  'aten::warn': () => [],
};

function textOf(a: Analysis, inputs: Abs[]): Abs[] {
  if (inputs.some((v) => isBatched(v) && !v.poisoned)) a.flow(conversionMessage);
  return [{ t: 'scalar', batch: inputs.some(carriesBatch) }];
}

function constantValue(v: Json): Abs {
  if (typeof v === 'number' && Number.isInteger(v)) return constInt(v);
  if (Array.isArray(v)) return { t: 'list', items: v.map(constantValue), elem: null };
  if (v !== null && typeof v === 'object' && Array.isArray(v.tensor)) {
    const shape = v.tensor as Json[];
    const tensor = publicTensor(shape.every((s) => typeof s === 'number') ? (shape as number[]).map(constInt) : null);
    const values = v.values;
    // A 0-dim integer constant (traced shape arithmetic): keep its value.
    if (shape.length === 0 && Array.isArray(values) && typeof values[0]! === 'number' && Number.isInteger(values[0]!)) {
      return { ...tensor, scalar: constInt(values[0]!) };
    }
    return tensor;
  }
  if (v !== null && typeof v === 'object') return OTHER;
  return { t: 'const', v };
}

function unpack(node: GraphNode, l: Abs | undefined): Abs[] {
  if (l?.t === 'list' && l.items && l.items.length === node.out.length) return l.items;
  return node.out.map(([, type]) => (l?.t === 'list' && l.elem ? l.elem : fromType(type)));
}

function identity(a: Analysis, node: GraphNode, inputs: Abs[], is: boolean): Abs[] {
  const [x, y] = inputs;
  const [xid, yid] = node.in.map((id) => a.canonical(id));
  if (xid === yid) return [{ t: 'const', v: is }];
  if (a.distinct(xid!, yid!)) return [{ t: 'const', v: !is }];
  const nx = knownConst(x);
  const ny = knownConst(y);
  if (nx && ny && nx.v === null && ny.v === null) return [{ t: 'const', v: is }];
  const isNone = (v: Abs | undefined, c: { v: Json } | null) => c?.v === null || (v?.t === 'const' && v.v === null);
  const known = (v: Abs | undefined) => v?.t === 'tensor' || v?.t === 'list' || v?.t === 'int' || (v?.t === 'const' && v.v !== null);
  if ((isNone(x, nx) && known(y)) || (isNone(y, ny) && known(x))) return [{ t: 'const', v: !is }];
  return [{ t: 'scalar', batch: false }];
}

function logical(inputs: Abs[], f: (x: boolean, y: boolean) => boolean): Abs[] {
  const [x, y] = inputs.map(knownConst);
  if (typeof x?.v === 'boolean' && typeof y?.v === 'boolean') return [{ t: 'const', v: f(x.v, y.v) }];
  if (inputs.some((v) => v.t === 'tensor')) return null as unknown as Abs[];
  return [{ t: 'scalar', batch: inputs.some(carriesBatch) }];
}

function minMax(node: GraphNode, inputs: Abs[], f: (...n: number[]) => number): Abs[] {
  const ns = inputs.map(knownInt);
  if (ns.every((n) => n !== null)) return [constInt(f(...(ns as number[])))];
  return [{ ...fromType(node.out[0]![1]!), ...(inputs.some(carriesBatch) ? { batch: true } : {}) } as Abs];
}

// --- Batch rules: one per tensor operator the allowlist admits -----------------------------------------

/** Elementwise (broadcasting) over every tensor input; other arguments must not carry B. */
const elementwise: Rule = (a, node, inputs) => {
  checkArguments(a, inputs);
  const tensors = inputs.filter((v): v is TensorVal => v.t === 'tensor' && !v.scalar);
  if (tensors.length === 0) return unknownOutputs(node, false);
  return node.out.map(() => broadcast(a, tensors));
};

/** Elementwise over the first input only (activations, unary math); other tensors (clamp bounds, a probability) broadcast with it. */
const unary: Rule = (a, node, inputs) => {
  checkArguments(a, inputs);
  const x = asTensor(inputs[0]!);
  if (!x) return unknownOutputs(node, anyPoisoned(inputs));
  // to(x, other) and type_as(x, other) only take other's dtype and device.
  const lendsDtype = node.k === 'aten::to' || node.k === 'aten::type_as';
  if (!lendsDtype && inputs.slice(1).some((v) => isBatched(v))) return elementwise(a, node, inputs);
  return node.out.map(() => (x.poisoned ? poisonedTensor() : { ...x, scalar: undefined }));
};

/** Operates along one dimension (argument `dimIndex`, `dimDefault` when absent): refused when it is the batch. */
function alongDim(dimIndex: number, what: string, dimDefault: number | null = null): Rule {
  return (a, node, inputs) => {
    checkArguments(a, inputs);
    const first = asTensor(inputs[0]!);
    if (!first || first.poisoned || anyPoisoned(inputs)) return unknownOutputs(node, true);
    // The batched operand decides (cosine_similarity(public, batched) is batched too).
    const x = [first, ...inputs.slice(1)].find((v): v is TensorVal => v.t === 'tensor' && v.batch !== null) ?? first;
    if (!x.batch) return node.out.map(([, type]) => (type === 'Tensor' ? publicTensor(x.dims) : fromType(type)));
    const given = inputs[dimIndex]!;
    const raw = given === undefined || knownConst(given)?.v === null ? (dimDefault === null ? undefined : constInt(dimDefault)) : given;
    const d = normDim(raw, rankOf(x));
    if (d === null) {
      a.mixing(`${what} along a dimension the analysis cannot determine, which could be the batch dimension`);
      return unknownOutputs(node, true);
    }
    if (d === x.batch.dim) {
      a.mixing(`${what} along the batch dimension (dim ${d}), which combines the samples of a batch`);
      return unknownOutputs(node, true);
    }
    // A second tensor (cosine_similarity's x2, a softmax mask) must line up with the first.
    const others = inputs.filter((v): v is TensorVal => v.t === 'tensor' && !v.scalar && v !== x);
    if (others.length > 0 && broadcast(a, [x, ...others]).poisoned) return unknownOutputs(node, true);
    return node.out.map(([, type]) => (type === 'Tensor' ? { ...x, scalar: undefined } : fromType(type)));
  };
}

/** Reductions: over given dims (refused when the batch is one of them) or over everything (refused). */
function reduce(dimIndex: number, keepdimIndex: number | null, what: string): Rule {
  return (a, node, inputs) => {
    const x = asTensor(inputs[0]!);
    checkArguments(a, inputs);
    if (!x || x.poisoned) return unknownOutputs(node, !!x?.poisoned);
    const rank = rankOf(x);
    const given = inputs[dimIndex]!;
    const all =
      given === undefined ||
      node.in.length <= dimIndex ||
      knownConst(given)?.v === null ||
      (given.t === 'list' && given.items?.length === 0) ||
      given.t === 'const' ||
      given.t === 'scalar';
    const dims = all ? (rank === null ? null : [...Array(rank).keys()]) : dimList(given, rank);
    const keep = keepdimIndex !== null && knownConst(inputs[keepdimIndex]!)?.v === true;
    if (x.batch) {
      if (dims === null) {
        a.mixing(`${what} over dimensions the analysis cannot determine, which could include the batch dimension`);
        return unknownOutputs(node, true);
      }
      if (dims.includes(x.batch.dim)) {
        a.mixing(`${what} over the batch dimension${all ? ' (it reduces every dimension)' : ''}, which combines the samples of a batch`);
        return unknownOutputs(node, true);
      }
    }
    if (!x.dims || dims === null)
      return node.out.map(([, type]) => (type === 'Tensor' ? (x.batch ? poisonedTensor() : publicTensor(null)) : fromType(type)));
    const outDims = keep ? x.dims.map((s, i) => (dims.includes(i) ? constInt(1) : s)) : x.dims.filter((_, i) => !dims.includes(i));
    const batchDim = x.batch ? (keep ? x.batch.dim : x.batch.dim - dims.filter((d) => d < x.batch!.dim).length) : null;
    return node.out.map(([, type]) => (type === 'Tensor' ? withDims(x, outDims, batchDim) : fromType(type)));
  };
}

/** Layers that mix the last `contracted` dimensions (and keep the rest): linear, layer_norm. */
function lastDims(count: (inputs: Abs[]) => number | null, outLast: (inputs: Abs[], x: TensorVal) => IntVal[] | null, what: string): Rule {
  return (a, node, inputs) => {
    checkArguments(a, inputs);
    const x = asTensor(inputs[0]!);
    if (!x || x.poisoned) return unknownOutputs(node, true);
    const rank = rankOf(x);
    const k = count(inputs);
    const outTail = outLast(inputs, x);
    if (x.batch) {
      if (rank === null || k === null) {
        a.mixing(`${what}: the analysis cannot determine which dimensions it combines`);
        return unknownOutputs(node, true);
      }
      if (x.batch.dim >= rank - k) {
        a.mixing(
          `${what} over the batch dimension (the input has the batch at dim ${x.batch.dim} of ${rank}), which combines the samples ` +
            `of a batch`,
        );
        return unknownOutputs(node, true);
      }
    }
    for (const other of inputs.slice(1)) {
      if (isBatched(other) && !other.poisoned) {
        a.mixing(`${what} with a weight computed from the samples, which combines the samples of a batch`);
        return unknownOutputs(node, true);
      }
    }
    const dims = x.dims && k !== null && outTail ? [...x.dims.slice(0, x.dims.length - k), ...outTail] : null;
    return node.out.map((_, i) => (i === 0 ? withDims(x, dims, x.batch?.dim ?? null) : fromType(node.out[i]![1]!)));
  };
}

/** Convolutions, pooling, padding and upsampling over the last `spatial` dims; `channels`: the dim before them is mixed too. */
function spatialOp(spatialOf: (node: GraphNode, inputs: Abs[]) => number | null, channels: boolean, what: string): Rule {
  return (a, node, inputs) => {
    checkArguments(a, inputs);
    const x = asTensor(inputs[0]!);
    if (!x || x.poisoned) return unknownOutputs(node, true);
    const rank = rankOf(x);
    const spatial = spatialOf(node, inputs);
    if (x.batch) {
      if (rank === null || spatial === null) {
        a.mixing(`${what}: the analysis cannot determine which dimensions it combines`);
        return unknownOutputs(node, true);
      }
      const mixed = spatial + (channels ? 1 : 0);
      if (x.batch.dim >= rank - mixed || (channels && rank !== spatial + 2)) {
        a.mixing(
          channels && rank === spatial + 1
            ? `${what} on a ${rank}-dimensional input treats it as one unbatched sample, so the batch dimension is read as channels ` +
                `and mixed`
            : `${what} over the batch dimension (the input has the batch at dim ${x.batch.dim} of ${rank}), which combines the ` +
                `samples of a batch`,
        );
        return unknownOutputs(node, true);
      }
    }
    for (const other of inputs.slice(1)) {
      if (isBatched(other) && !other.poisoned) {
        a.mixing(`${what} with weights computed from the samples, which combines the samples of a batch`);
        return unknownOutputs(node, true);
      }
    }
    const dims =
      x.dims && spatial !== null
        ? [
            ...x.dims.slice(0, x.dims.length - spatial - (channels ? 1 : 0)),
            ...Array.from({ length: spatial + (channels ? 1 : 0) }, () => fresh()),
          ]
        : null;
    // Every tensor output (max_pool*_with_indices has two) has the input's layout.
    return node.out.map(([, type]) => (type === 'Tensor' ? withDims(x, dims, x.batch?.dim ?? null) : fromType(type)));
  };
}

const fixedSpatial = (n: number) => () => n;
const convSpatial = (node: GraphNode, inputs: Abs[]): number | null => {
  if (node.k === 'aten::_convolution' || node.k === 'aten::convolution') {
    const w = asTensor(inputs[1]!);
    return w?.dims ? w.dims.length - 2 : null;
  }
  const m = /(\d)d$/.exec(node.k);
  return m ? Number(m[1]!) : null;
};

/** Matrix products: the batch may be a broadcast (leading) dim of both, or a row of the left / column of the right operand. */
const matmulRule: Rule = (a, node, inputs) => {
  checkArguments(a, inputs);
  // baddbmm/addmm/addbmm(input, m1, m2, ...): product of m1·m2, then elementwise with input.
  const withInput = ['aten::baddbmm', 'aten::addmm', 'aten::addbmm', 'aten::addmv'].includes(node.k);
  const [left, right] = (withInput ? inputs.slice(1, 3) : inputs.slice(0, 2)).map(asTensor);
  if (!left || !right) return unknownOutputs(node, anyPoisoned(inputs));
  if (left.poisoned || right.poisoned) return unknownOutputs(node, true);
  if (node.k === 'aten::addbmm' && (left.batch || right.batch)) {
    a.mixing('sums its matrix products over the first dimension, which combines the samples of a batch');
    return unknownOutputs(node, true);
  }
  const lr = rankOf(left);
  const rr = rankOf(right);
  let product: TensorVal;
  if (lr === null || rr === null || lr < 2 || rr < 2) {
    if (left.batch || right.batch) {
      a.mixing(
        'multiplies a batched tensor as a vector or with operands of unknown rank, so the analysis cannot rule out a product over ' +
          'the batch dimension',
      );
      return unknownOutputs(node, true);
    }
    product = publicTensor(null);
  } else {
    const lead = Math.max(lr, rr) - 2;
    const lb = left.batch ? left.batch.dim - lr : null; // negative index from the end
    const rb = right.batch ? right.batch.dim - rr : null;
    const contracted = lb === -1 || rb === -2;
    const leadOnly = (x: number | null) => x === null || x < -2;
    if (contracted) {
      a.mixing('contracts the batch dimension in a matrix product, which combines the samples of a batch');
      return unknownOutputs(node, true);
    }
    let outBatch: number | null = null;
    let inner: Mono = ONE;
    let batchSize: IntVal | null = null;
    if (lb !== null && rb !== null) {
      const same =
        lb === rb &&
        leadOnly(lb) &&
        monoEq(left.batch!.inner, right.batch!.inner) &&
        monoEq(left.dims![left.batch!.dim]!.m, right.dims![right.batch!.dim]!.m);
      if (!same) {
        a.mixing('multiplies batched tensors whose batch dimensions do not line up, which combines different samples');
        return unknownOutputs(node, true);
      }
      outBatch = lb;
      inner = left.batch!.inner;
      batchSize = left.dims![left.batch!.dim]!;
    } else if (lb !== null) {
      outBatch = lb; // a row (-2) or a leading dim
      inner = left.batch!.inner;
      batchSize = left.dims![left.batch!.dim]!;
    } else if (rb !== null) {
      outBatch = rb === -1 ? -1 : rb; // a column, or a leading dim
      inner = right.batch!.inner;
      batchSize = right.dims![right.batch!.dim]!;
    }
    const leadDims = lr >= rr ? left.dims!.slice(0, lr - 2) : right.dims!.slice(0, rr - 2);
    const dims = [
      ...leadDims.map((d, i) => (outBatch !== null && i === lead + 2 + outBatch ? batchSize! : d)),
      left.dims![lr - 2]!,
      right.dims![rr - 1]!,
    ];
    const rank = lead + 2;
    if (outBatch !== null) {
      dims[rank + outBatch] = batchSize!;
      product = { t: 'tensor', dims, batch: { dim: rank + outBatch, inner } };
    } else {
      product = publicTensor(dims);
    }
  }
  if (!withInput) return [product];
  const base = asTensor(inputs[0]!);
  return [base ? broadcast(a, [base, product]) : product];
};

/** einsum(equation, [tensors]): the batch letter of every batched operand must be one letter, kept in the output. */
const einsumRule: Rule = (a, node, inputs) => {
  const eq = knownConst(inputs[0]!)?.v;
  const list = inputs[1]!;
  const operands = list?.t === 'list' && list.items ? list.items.map(asTensor) : null;
  if (!operands || operands.some((o) => !o) || !operands.some((o) => o!.batch)) {
    if (operands?.some((o) => o?.poisoned)) return unknownOutputs(node, true);
    if (!operands?.some((o) => o?.batch)) return unknownOutputs(node, false);
  }
  if (typeof eq !== 'string' || eq.includes('.') || !eq.includes('->')) {
    a.mixing(
      'einsum on batched tensors needs a constant equation with an explicit output and no ellipsis, so the analysis can follow the ' +
        'batch dimension',
    );
    return unknownOutputs(node, true);
  }
  const [lhs = '', out = ''] = eq.replace(/\s/g, '').split('->');
  const terms = lhs.split(',');
  let letter: string | null = null;
  let source: TensorVal | null = null;
  for (const [i, o] of operands!.entries()) {
    if (!o!.batch) continue;
    const l = terms[i]!?.[o!.batch.dim];
    if (!l || (letter !== null && l !== letter)) {
      a.mixing('einsum pairs the batch dimensions of its operands with different letters, which combines different samples');
      return unknownOutputs(node, true);
    }
    letter = l;
    source = o!;
  }
  const at = out.indexOf(letter!);
  if (at < 0) {
    a.mixing(`einsum sums over the batch letter '${letter}', which combines the samples of a batch`);
    return unknownOutputs(node, true);
  }
  return [
    {
      t: 'tensor',
      dims: [...out].map((_c, i) => (i === at ? source!.dims![source!.batch!.dim]! : fresh())),
      batch: { dim: at, inner: source!.batch!.inner },
    },
  ];
};

/** Refused whenever the tensor is batched: the operation picks or compacts elements across samples. */
function refuseBatched(what: string, argIndexes: number[] = [0]): Rule {
  return (a, node, inputs) => {
    checkArguments(a, inputs);
    const hit = argIndexes.some((i) => isBatched(inputs[i]!) && !(inputs[i]! as TensorVal).poisoned);
    if (hit) a.mixing(`${what}, which combines the samples of a batch`);
    return unknownOutputs(node, hit || anyPoisoned(inputs));
  };
}

/** Keeps the layout (copies, casts, dropout masks drawn per element). */
const keep: Rule = unary;

/**
 * A rule for an operator that rearranges one tensor's dimensions: `layout` gives the output (x has
 * known dims) or null when the arguments cannot be resolved, which is refused for a batched tensor.
 */
function rearrange(cannot: string, layout: (x: TensorVal & { dims: IntVal[] }, inputs: Abs[], rank: number) => TensorVal | null): Rule {
  return (a, node, inputs) => {
    checkArguments(a, inputs);
    const x = asTensor(inputs[0]!);
    if (!x || x.poisoned) return unknownOutputs(node, true);
    const out = x.dims ? layout(x as TensorVal & { dims: IntVal[] }, inputs, x.dims.length) : null;
    if (out) return [out];
    if (x.batch) a.mixing(cannot);
    return [x.batch ? poisonedTensor() : publicTensor(null)];
  };
}

/** The tensor with its dimensions in `order` (output dim i is input dim order[i]). */
function reorder(x: TensorVal & { dims: IntVal[] }, order: readonly number[]): TensorVal {
  return withDims(
    x,
    order.map((d) => x.dims[d]!),
    x.batch ? order.indexOf(x.batch.dim) : null,
  );
}

const swapRule = (pair: (inputs: Abs[], rank: number) => [number | null, number | null]): Rule =>
  rearrange('transposes dimensions the analysis cannot determine', (x, inputs, rank) => {
    const [d0, d1] = pair(inputs, rank);
    if (d0 === null || d1 === null) return null;
    if (d0 === d1) return { ...x };
    const order = [...Array(rank).keys()];
    [order[d0], order[d1]] = [d1, d0];
    return reorder(x, order);
  });
const transposeRule = swapRule((inputs, rank) => [normDim(inputs[1], rank), normDim(inputs[2], rank)]);
/** t(): rank 0 and 1 unchanged, rank 2 transposed. */
const tRule = swapRule((_inputs, rank) => (rank < 2 ? [0, 0] : [0, 1]));

const permuteRule = rearrange('permutes dimensions the analysis cannot determine', (x, inputs, rank) => {
  const order = dimList(inputs[1], rank);
  return order ? reorder(x, order) : null;
});

const movedimRule = rearrange('moves dimensions the analysis cannot determine', (x, inputs, rank) => {
  const src = dimList(inputs[1], rank);
  const dst = dimList(inputs[2], rank);
  if (!src || !dst || src.length !== dst.length) return null;
  const order: number[] = new Array(rank).fill(-1);
  src.forEach((s, i) => {
    order[dst[i]!] = s;
  });
  const rest = [...Array(rank).keys()].filter((d) => !src.includes(d));
  for (let i = 0; i < rank; i += 1) if (order[i]! < 0) order[i] = rest.shift()!;
  return reorder(x, order);
});

const unsqueezeRule = rearrange('inserts a dimension at a place the analysis cannot determine', (x, inputs, rank) => {
  const d = normDim(inputs[1], rank + 1);
  if (d === null) return null;
  const dims = [...x.dims.slice(0, d), constInt(1), ...x.dims.slice(d)];
  return withDims(x, dims, x.batch ? (x.batch.dim >= d ? x.batch.dim + 1 : x.batch.dim) : null);
});

const squeezeRule: Rule = (a, node, inputs) => {
  checkArguments(a, inputs);
  const x = asTensor(inputs[0]!);
  if (!x || x.poisoned) return unknownOutputs(node, true);
  const rank = rankOf(x);
  if (node.in.length < 2) {
    if (!x.dims) return [x.batch ? poisonedTensor() : publicTensor(null)];
    if (x.batch) {
      const unknown = x.dims.filter((s, i) => i !== x.batch!.dim && knownInt(s) === null);
      if (unknown.length > 0) {
        a.mixing(
          'squeezes every size-1 dimension of a batched tensor whose sizes the analysis does not know; name the dimension (squeeze(-1))',
        );
        return [poisonedTensor()];
      }
      a.mixing(
        'squeezes every size-1 dimension, which drops the batch dimension when a batch has one sample; name the dimension (squeeze(-1))',
      );
      return [poisonedTensor()];
    }
    return [publicTensor(x.dims.filter((s) => knownInt(s) !== 1))];
  }
  const dims = dimList(inputs[1]!, rank);
  if (!dims || !x.dims) {
    if (x.batch) a.mixing('squeezes a dimension the analysis cannot determine');
    return [x.batch ? poisonedTensor() : publicTensor(null)];
  }
  if (x.batch && dims.includes(x.batch.dim)) {
    a.mixing('squeezes the batch dimension, which a batch of one sample would lose');
    return [poisonedTensor()];
  }
  // Squeezing a dimension whose size is not known to be 1 may or may not remove it.
  const gone = dims.filter((d) => knownInt(x.dims![d]!) === 1);
  if (gone.length !== dims.length) {
    if (x.batch && dims.some((d) => d < x.batch!.dim)) {
      a.mixing('squeezes a dimension before the batch dimension whose size the analysis does not know');
      return [poisonedTensor()];
    }
    return [withDims(x, null, x.batch?.dim ?? null)];
  }
  return [
    withDims(
      x,
      x.dims.filter((_, i) => !gone.includes(i)),
      x.batch ? x.batch.dim - gone.filter((d) => d < x.batch!.dim).length : null,
    ),
  ];
};

const flattenRule: Rule = (a, node, inputs) => {
  checkArguments(a, inputs);
  const x = asTensor(inputs[0]!);
  if (!x || x.poisoned) return unknownOutputs(node, true);
  const rank = rankOf(x);
  const start = normDim(inputs[1]! ?? constInt(0), rank);
  const end = normDim(inputs[2]! ?? constInt(-1), rank);
  if (start === null || end === null || !x.dims) {
    if (rank === 0) return [{ ...x, dims: x.dims ? [constInt(1)] : null }];
    if (x.batch) a.mixing('flattens dimensions the analysis cannot determine');
    return [x.batch ? poisonedTensor() : publicTensor(null)];
  }
  if (end < start) return [x];
  const merged = product(x.dims.slice(start, end + 1));
  const target = [
    ...x.dims.slice(0, start),
    merged ? mono(merged) : fresh(x.batch !== null && x.batch.dim >= start && x.batch.dim <= end),
    ...x.dims.slice(end + 1),
  ];
  if (!x.batch) return [publicTensor(target)];
  return [reshapeBatched(a, x, target)];
};

const viewRule: Rule = (a, node, inputs) => {
  const x = asTensor(inputs[0]!);
  if (!x) return unknownOutputs(node, anyPoisoned(inputs));
  let target = intList(inputs[1]!);
  if (node.k === 'aten::view_as' || node.k === 'aten::reshape_as') {
    const other = asTensor(inputs[1]!);
    target = other?.dims ?? null;
    if (other?.poisoned) return [poisonedTensor()];
  }
  return [reshape(a, x, target)];
};

const unflattenRule: Rule = (a, node, inputs) => {
  const x = asTensor(inputs[0]!);
  if (!x || x.poisoned) return unknownOutputs(node, true);
  const d = normDim(inputs[1]!, rankOf(x));
  const sizes = intList(inputs[2]!);
  if (d === null || !sizes || !x.dims) {
    if (x.batch || carriesBatch(inputs[2]!)) a.mixing('unflattens a dimension the analysis cannot determine');
    return [x.batch ? poisonedTensor() : publicTensor(null)];
  }
  return [reshape(a, x, [...x.dims.slice(0, d), ...sizes, ...x.dims.slice(d + 1)])];
};

/** expand(sizes): -1 keeps a size; the batch dimension must keep B. */
const expandRule: Rule = (a, node, inputs) => {
  const x = asTensor(inputs[0]!);
  if (!x || x.poisoned) return unknownOutputs(node, true);
  if (node.k === 'aten::expand_as') {
    const other = asTensor(inputs[1]!);
    if (!other || other.poisoned) return [poisonedTensor()];
    return [broadcast(a, [x, other], 'expands')];
  }
  const sizes = intList(inputs[1]!);
  const rank = rankOf(x);
  if (!sizes || rank === null || !x.dims) {
    if (x.batch || carriesBatch(inputs[1]!)) a.mixing('expands to sizes the analysis cannot determine');
    return [x.batch ? poisonedTensor() : publicTensor(null)];
  }
  const lead = sizes.length - rank;
  const dims = sizes.map((s, i) => (knownInt(s) === -1 && i >= lead ? x.dims![i - lead]! : s));
  if (x.batch) {
    const at = x.batch.dim + lead;
    if (!monoEq(dims[at]!.m, x.dims[x.batch.dim]!.m)) {
      a.mixing('expands the batch dimension to another size');
      return [poisonedTensor()];
    }
    if (dims.some((s, i) => i !== at && s.batch)) {
      a.flow('expands a dimension to a size computed from the number of samples');
      return [poisonedTensor()];
    }
    return [{ t: 'tensor', dims, batch: { dim: at, inner: x.batch.inner } }];
  }
  return [createWithShape(a, dims)];
};

/** repeat(sizes)/tile: the batch dimension must be repeated once. */
const repeatRule: Rule = (a, node, inputs) => {
  checkArguments(a, inputs);
  const x = asTensor(inputs[0]!);
  if (!x || x.poisoned) return unknownOutputs(node, true);
  if (!x.batch) return [publicTensor(null)];
  const reps = intList(inputs[1]!);
  const rank = rankOf(x);
  if (!reps || rank === null || reps.length < rank) {
    a.mixing('repeats a batched tensor by counts the analysis cannot determine');
    return [poisonedTensor()];
  }
  const lead = reps.length - rank;
  if (knownInt(reps[x.batch.dim + lead]!) !== 1) {
    a.mixing('repeats the batch dimension, which interleaves copies of different samples');
    return [poisonedTensor()];
  }
  const dims = reps.map((r, i) => (i < lead ? r : i - lead === x.batch!.dim ? x.dims![x.batch!.dim]! : fresh()));
  return [{ t: 'tensor', dims, batch: { dim: x.batch.dim + lead, inner: x.batch.inner } }];
};

/** cat/stack of a list of tensors along a dimension that must not be the batch. */
function joinRule(stack: boolean): Rule {
  return (a, _node, inputs) => {
    checkArguments(a, inputs.slice(1));
    const list = inputs[0]!;
    const items = list?.t === 'list' ? (list.items ?? (list.elem ? [list.elem] : null)) : null;
    const tensors = items?.map(asTensor) ?? null;
    if (!tensors || tensors.some((t) => !t)) {
      if (carriesBatchOrBatched(list)) a.mixing('joins tensors the analysis cannot follow');
      return [carriesBatchOrBatched(list) ? poisonedTensor() : publicTensor(null)];
    }
    const ts = tensors as TensorVal[];
    if (ts.some((t) => t.poisoned)) return [poisonedTensor()];
    const batched = ts.filter((t) => t.batch);
    const rank = ts.map(rankOf).find((r) => r !== null) ?? null;
    if (batched.length === 0) {
      if (rank === null || !ts.every((t) => t.dims)) return [publicTensor(null)];
      const d = normDim(inputs[1]! ?? constInt(0), stack ? rank + 1 : rank);
      if (d === null) return [publicTensor(null)];
      const base = [...ts[0]!.dims!];
      if (stack) base.splice(d, 0, constInt(ts.length));
      else base[d] = fresh();
      return [publicTensor(base)];
    }
    const first = batched[0]!;
    const r = rankOf(first);
    const d = normDim(inputs[1]! ?? constInt(0), r === null ? null : stack ? r + 1 : r);
    const aligned = batched.every(
      (t) => t.batch!.dim === first.batch!.dim && rankOf(t) === r && monoEq(t.batch!.inner, first.batch!.inner),
    );
    if (d === null || !aligned || !first.dims) {
      a.mixing(
        `${stack ? 'stacks' : 'concatenates'} batched tensors along a dimension the analysis cannot determine, or whose batch ` +
          `dimensions do not line up`,
      );
      return [poisonedTensor()];
    }
    if (!stack && d === first.batch!.dim) {
      a.mixing('concatenates along the batch dimension, which moves samples to other rows of the batch');
      return [poisonedTensor()];
    }
    const dims = [...first.dims];
    let batchDim = first.batch!.dim;
    if (stack) {
      dims.splice(d, 0, constInt(ts.length));
      if (d <= batchDim) batchDim += 1;
    } else {
      dims[d] = fresh();
    }
    return [{ t: 'tensor', dims, batch: { dim: batchDim, inner: first.batch!.inner } }];
  };
}
function carriesBatchOrBatched(v: Abs | undefined): boolean {
  if (!v) return false;
  if (v.t === 'tensor') return v.batch !== null;
  if (v.t === 'list') return (v.items ?? []).some(carriesBatchOrBatched) || carriesBatchOrBatched(v.elem ?? undefined) || carriesBatch(v);
  return carriesBatch(v);
}

/** split/chunk/unbind along a dimension: a list of tensors of the same layout (refused along the batch). */
function splitRule(kind: 'split' | 'chunk' | 'unbind'): Rule {
  return (a, _node, inputs) => {
    checkArguments(a, inputs);
    const x = asTensor(inputs[0]!);
    if (!x || x.poisoned) return [{ t: 'list', items: null, elem: poisonedTensor() }];
    const rank = rankOf(x);
    const dimArg = kind === 'unbind' ? inputs[1]! : inputs[2]!;
    const d = normDim(dimArg ?? constInt(0), rank);
    if (x.batch && (d === null || d === x.batch.dim)) {
      a.mixing(
        d === null
          ? `${kind}s along a dimension the analysis cannot determine`
          : `${kind}s along the batch dimension, which separates the samples of a batch into different tensors`,
      );
      return [{ t: 'list', items: null, elem: poisonedTensor() }];
    }
    if (d === null || !x.dims) return [{ t: 'list', items: null, elem: x.batch ? poisonedTensor() : publicTensor(null) }];
    if (kind === 'unbind') {
      const piece = withDims(
        x,
        x.dims.filter((_, i) => i !== d),
        x.batch ? (x.batch.dim > d ? x.batch.dim - 1 : x.batch.dim) : null,
      );
      const n = knownInt(x.dims[d]!);
      return [{ t: 'list', items: n !== null && n <= 64 ? Array.from({ length: n }, () => piece) : null, elem: piece }];
    }
    const size = knownInt(x.dims[d]!);
    const arg = knownInt(inputs[1]!);
    let pieces: IntVal[] | null = null;
    if (kind === 'chunk' && size !== null && arg !== null && arg > 0) {
      const each = Math.ceil(size / arg);
      pieces = [];
      for (let left = size; left > 0; left -= each) pieces.push(constInt(Math.min(each, left)));
    } else if (kind === 'split' && size !== null && arg !== null && arg > 0) {
      pieces = [];
      for (let left = size; left > 0; left -= arg) pieces.push(constInt(Math.min(arg, left)));
    } else if (kind === 'split' && inputs[1]?.t === 'list') {
      pieces = intList(inputs[1]!);
    }
    const make = (s: IntVal) => {
      const dims = [...x.dims!];
      dims[d] = s;
      return withDims(x, dims, x.batch?.dim ?? null);
    };
    if (pieces && pieces.length <= 64) return [{ t: 'list', items: pieces.map(make), elem: make(fresh()) }];
    return [{ t: 'list', items: null, elem: make(fresh()) }];
  };
}

/** select/narrow/slice on a tensor: refused on the batch dimension (it picks samples). */
function indexAlong(kind: 'select' | 'narrow' | 'slice'): Rule {
  return (a, node, inputs) => {
    const x = asTensor(inputs[0]!);
    if (!x) return unknownOutputs(node, anyPoisoned(inputs));
    checkArguments(a, inputs);
    if (x.poisoned) return [poisonedTensor()];
    const rank = rankOf(x);
    const d = normDim(inputs[1]! ?? constInt(0), rank);
    // x[:, i]! slices dim 0 from start to end with step 1: the identity.
    const whole = kind === 'slice' && isStart(inputs[2]!) && isEnd(inputs[3]!) && (knownInt(inputs[4]!) ?? 1) === 1;
    if (whole) return [x.poisoned ? poisonedTensor() : { ...x }];
    if (x.batch && (d === null || d === x.batch.dim)) {
      a.mixing(
        d === null
          ? `${kind === 'select' ? 'indexes' : 'slices'} a batched tensor along a dimension the analysis cannot determine`
          : `${kind === 'select' ? 'picks one sample of' : 'slices'} the batch dimension, which makes one sample's result depend on ` +
              `which others are in the batch`,
      );
      return [poisonedTensor()];
    }
    if (d === null || !x.dims) return [withDims(x, null, null)];
    if (kind === 'select')
      return [
        withDims(
          x,
          x.dims.filter((_, i) => i !== d),
          x.batch ? (x.batch.dim > d ? x.batch.dim - 1 : x.batch.dim) : null,
        ),
      ];
    const dims = [...x.dims];
    const start = knownInt(inputs[2]!);
    const end = knownInt(inputs[3]!);
    const length =
      kind === 'narrow'
        ? knownInt(inputs[3]!)
        : start === 0 && end !== null && end >= 0 && end < 2 ** 53 && (knownInt(inputs[4]!) ?? 1) === 1
          ? end
          : null;
    dims[d] = length !== null ? constInt(length) : fresh();
    return [withDims(x, dims, x.batch?.dim ?? null)];
  };
}

function isStart(v: Abs | undefined): boolean {
  return v === undefined || knownConst(v)?.v === null || knownInt(v) === 0;
}
/** None, or an end at or past 2^62 (Python's x[a:]! is written with INT64_MAX). */
function isEnd(v: Abs | undefined): boolean {
  const n = knownInt(v);
  return v === undefined || knownConst(v)?.v === null || (n !== null && n >= 2 ** 62);
}

/** index_select/gather/scatter-like with a `dim` argument at `dimIndex`: never along the batch; index tensors aligned. */
function indexedAlong(dimIndex: number, what: string): Rule {
  return (a, node, inputs) => {
    checkArguments(a, inputs);
    const x = asTensor(inputs[0]!);
    if (!x || inputs.some((v) => v.t === 'tensor' && v.poisoned)) return unknownOutputs(node, true);
    const d = normDim(inputs[dimIndex]!, rankOf(x));
    const others = inputs.slice(1).filter(isBatched);
    if (x.batch) {
      if (d === null || d === x.batch.dim) {
        a.mixing(
          `${what} along ${d === null ? 'a dimension the analysis cannot determine' : 'the batch dimension'}, which moves values ` +
            `between samples`,
        );
        return unknownOutputs(node, true);
      }
    }
    const all = [x, ...others];
    const batched = all.filter((t) => t.batch);
    if (batched.length > 1 && !batched.every((t) => t.batch!.dim === batched[0]!.batch!.dim && rankOf(t) === rankOf(batched[0]!))) {
      a.mixing(`${what} with batched operands whose batch dimensions do not line up`);
      return unknownOutputs(node, true);
    }
    if (!x.batch && others.length > 0) {
      // gather(public, dim, batched index) etc.: the result takes the index's layout.
      const idx = others[0]!;
      if (d === null || d === idx.batch!.dim) {
        a.mixing(`${what} with a batched index along the batch dimension`);
        return unknownOutputs(node, true);
      }
      return node.out.map(() => ({ ...idx }));
    }
    if (!x.batch) return node.out.map(() => publicTensor(null));
    // index_select changes the size of dim d; gather/scatter keep x's sizes.
    const dims = node.k === 'aten::index_select' && x.dims ? x.dims.map((s, i) => (i === d ? fresh() : s)) : x.dims;
    return node.out.map(() => withDims(x, dims, x.batch!.dim));
  };
}

/** aten::index(x, [indices]): advanced indexing; allowed on a batched x only after the batch dim with public indices. */
const indexRule: Rule = (a, _node, inputs) => {
  checkArguments(a, inputs);
  const x = asTensor(inputs[0]!);
  const list = inputs[1]!;
  const items = list?.t === 'list' ? list.items : null;
  if (!x || x.poisoned || (items ?? []).some((v) => v.t === 'tensor' && v.poisoned)) return [poisonedTensor()];
  const indexBatched = items === null ? carriesBatchOrBatched(list) : items.some((v) => isBatched(v));
  if (!x.batch && !indexBatched) return [publicTensor(null)];
  if (!items || indexBatched || !x.dims) {
    a.mixing(
      'indexes with tensors computed from the samples, or in a way the analysis cannot follow, which can pick values across samples',
    );
    return [poisonedTensor()];
  }
  const used = items.map((v, i) => (v.t === 'const' && v.v === null ? -1 : i)).filter((i) => i >= 0);
  if (used.includes(x.batch!.dim) || used.some((i) => i < x.batch!.dim) || used.some((i, k) => k > 0 && i !== used[k - 1]! + 1)) {
    a.mixing('indexes the batch dimension (or dimensions before it, or non-adjacent ones), which picks values across samples');
    return [poisonedTensor()];
  }
  // The indexed dims are replaced in place by the index's shape, whose rank is not tracked here:
  // the batch keeps its place in front of them.
  return [{ t: 'tensor', dims: [...x.dims.slice(0, used[0]!), fresh()], batch: x.batch }];
};

/** Creation from a size list (zeros(B, ...), randn(...), full(size, v)). */
function createRule(sizeIndex: number, fillIndex: number | null = null): Rule {
  return (a, _node, inputs) => {
    if (fillIndex !== null && carriesBatch(inputs[fillIndex]!))
      a.flow('fills a tensor with a value computed from the number of samples, which is private');
    const shape = intList(inputs[sizeIndex]!);
    if (!shape && carriesBatch(inputs[sizeIndex]!)) {
      a.flow('creates a tensor of a size computed from the number of samples in a way the analysis cannot follow');
      return [poisonedTensor()];
    }
    return [createWithShape(a, shape)];
  };
}
/** zeros_like(x) etc.: x's layout, with no data of it. */
const likeRule: Rule = (a, node, inputs) => {
  checkArguments(a, inputs.slice(1));
  const x = asTensor(inputs[0]!);
  if (!x) return unknownOutputs(node, false);
  return [x.poisoned ? poisonedTensor() : { t: 'tensor', dims: x.dims, batch: x.batch }];
};
/** new_zeros(x, size): x only lends dtype and device. */
const newRule = (fillIndex: number | null): Rule => createRule(1, fillIndex);

/** arange(end)/(start, end, step): arange(B) numbers the samples: data-free, per position. */
const arangeRule: Rule = (a, _node, inputs) => {
  const ints = inputs.filter((v) => v.t === 'int' || (v.t === 'tensor' && v.scalar));
  if (ints.length === 1 && toIntVal(ints[0]!)?.batch) {
    const n = toIntVal(ints[0]!)!;
    return [createWithShape(a, [n])];
  }
  if (inputs.some(carriesBatch)) a.flow('creates a range whose bounds depend on the number of samples');
  return [publicTensor([fresh()])];
};

/** Layer norm over the trailing normalized_shape dims (argument 1). */
const layerNormRule = lastDims(
  (inputs) => intList(inputs[1]!)?.length ?? null,
  (inputs, x) => (x.dims ? x.dims.slice(x.dims.length - (intList(inputs[1]!)?.length ?? 0)) : null),
  'layer_norm normalises',
);
const linearRule = lastDims(
  () => 1,
  (inputs) => {
    const w = asTensor(inputs[1]!);
    return w?.dims && w.dims.length >= 1 ? [w.dims[0]!] : [fresh()];
  },
  'the layer contracts its last dimension',
);

/**
 * Normalisations with weights (and running statistics) that must be public; `refusal` says why the
 * batch's place in x is refused, or null when it is fine. The first output has x's layout.
 */
function normalisation(refusal: (x: TensorVal & { batch: BatchAt }) => string | null): Rule {
  return (a, node, inputs) => {
    checkArguments(a, inputs);
    const x = asTensor(inputs[0]!);
    if (!x || x.poisoned) return unknownOutputs(node, true);
    if (inputs.slice(1).some((v) => isBatched(v) && !v.poisoned)) {
      a.mixing('normalises with weights or statistics computed from the samples');
      return unknownOutputs(node, true);
    }
    const why = x.batch ? refusal(x as TensorVal & { batch: BatchAt }) : null;
    if (why) {
      a.mixing(why);
      return unknownOutputs(node, true);
    }
    return node.out.map(([, type], i) => (i === 0 ? { ...x } : fromType(type)));
  };
}

/** group_norm / instance_norm: statistics per sample over channels and space; the batch must be dim 0. */
const perSampleNorm = normalisation((x) =>
  x.batch.dim !== 0 || (rankOf(x) ?? 0) < 2 || !monoEq(x.batch.inner, ONE)
    ? 'normalises with statistics that include the batch dimension (the batch must be dim 0 of an input with channels)'
    : null,
);

/** batch_norm in eval form (the policy refuses training mode): an affine map per channel (dim 1). */
const batchNormEval = normalisation((x) =>
  x.batch.dim === 1 ? 'normalises per channel, and the channel dimension holds the batch' : null,
);

const embeddingRule: Rule = (a, _node, inputs) => {
  checkArguments(a, inputs);
  const [w, idx] = [asTensor(inputs[0]!), asTensor(inputs[1]!)];
  if (!w || !idx || w.poisoned || idx.poisoned) return [poisonedTensor()];
  if (w.batch) {
    a.mixing('looks up rows of a table computed from the samples');
    return [poisonedTensor()];
  }
  const d = w.dims && w.dims.length === 2 ? w.dims[1]! : fresh();
  return [withDims(idx, idx.dims ? [...idx.dims, d] : null, idx.batch?.dim ?? null)];
};

/** Attention over the last two dims of q, k, v (and the mask): the batch must be a leading dim of all. */
const attentionRule: Rule = (a, _node, inputs) => {
  checkArguments(a, inputs.slice(3));
  const [q, k, v] = inputs.slice(0, 3).map(asTensor);
  const mask = asTensor(inputs[3]!);
  const all = [q, k, v, mask].filter((t): t is TensorVal => !!t);
  if (all.some((t) => t.poisoned)) return [poisonedTensor()];
  if (!all.some((t) => t.batch)) return [publicTensor(q?.dims ?? null)];
  for (const t of all) {
    const r = rankOf(t);
    if (t.batch && (r === null || t.batch.dim >= r - 2)) {
      a.mixing(
        'attends over the batch dimension (it must be a leading dimension of queries, keys and values), which combines the samples ' +
          'of a batch',
      );
      return [poisonedTensor()];
    }
  }
  const qs = [q, k, v].filter((t): t is TensorVal => !!t);
  const fromEnd = qs.map((t) => (t.batch ? rankOf(t)! - t.batch.dim : null));
  if (fromEnd.some((f) => f === null) || !fromEnd.every((f) => f === fromEnd[0]!)) {
    a.mixing('attends between queries and keys of different samples (their batch dimensions do not line up)');
    return [poisonedTensor()];
  }
  return [{ ...q! }];
};

/**
 * The recurrent layers (nn.LSTM, nn.GRU, nn.RNN: aten::lstm, gru, rnn_tanh, rnn_relu), input overloads:
 * (input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first). The recurrence
 * runs along the time dimension, so the batch must be the other leading dimension of a 3-D input (dim 0
 * when batch_first, else 1) and dim 1 of every initial state; the outputs keep it there. The packed
 * overloads (a PackedSequence: data, batch_sizes, ...) interleave the samples of a batch and are refused.
 */
const recurrentRule: Rule = (a, node, inputs) => {
  const lstm = node.k === 'aten::lstm';
  const packed = lstm ? inputs[1]?.t !== 'list' : inputs[2]?.t !== 'list';
  if (packed) {
    if (inputs.some(isBatched)) {
      a.mixing('runs a recurrent layer on a packed sequence, whose layout interleaves the samples of a batch (pass padded tensors)');
    }
    return unknownOutputs(node, inputs.some(isBatched));
  }
  checkArguments(a, inputs.slice(3));
  const x = asTensor(inputs[0]);
  const hx = lstm ? ((inputs[1] as ListVal).items ?? [(inputs[1] as ListVal).elem ?? OTHER]) : [inputs[1]!];
  const params = inputs[2]!;
  const states = hx.map(asTensor).filter((t): t is TensorVal => t !== null);
  if (!x || anyPoisoned([x, ...states])) return unknownOutputs(node, true);
  const batchedParams =
    params.t === 'list' && ((params.items ?? []).some((p) => isBatched(p) || hasPoison(p)) || isBatched(params.elem ?? undefined));
  if (batchedParams) {
    a.mixing('runs a recurrent layer with weights computed from the samples, which combines the samples of a batch');
    return unknownOutputs(node, true);
  }
  if (!x.batch && !states.some((t) => t.batch)) return node.out.map(([, type]) => fromType(type));
  const batchFirst = knownConst(inputs[8])?.v;
  if (typeof batchFirst !== 'boolean') {
    a.mixing('runs a recurrent layer whose batch_first flag the analysis cannot determine, so the recurrence could run over the batch');
    return unknownOutputs(node, true);
  }
  const at = batchFirst ? 0 : 1;
  const leading = (t: TensorVal, dim: number) => t.batch === null || (rankOf(t) === 3 && t.batch.dim === dim && monoEq(t.batch.inner, ONE));
  if (!leading(x, at) || rankOf(x) !== 3) {
    a.mixing(
      `runs a recurrence over a tensor whose batch is ` +
        `not dim ${at} of 3 (${batchFirst ? 'batch_first: [batch, time, features]' : '[time, batch, features]'}), so it would carry ` +
        `state from one sample to the next`,
    );
    return unknownOutputs(node, true);
  }
  if (!states.every((t) => leading(t, 1))) {
    a.mixing('starts a recurrence from a state whose batch is not dim 1 of [layers, batch, hidden], so it would mix samples');
    return unknownOutputs(node, true);
  }
  const batchSize = x.batch ? x.dims![at]! : states.find((t) => t.batch)!.dims![1]!;
  const batch: BatchAt = { dim: at, inner: ONE };
  return node.out.map(([, type], i) => {
    if (type !== 'Tensor') return fromType(type);
    if (i === 0) {
      const dims = x.dims!.map((d, k) => (k === 2 ? fresh() : k === at ? batchSize : d));
      return { t: 'tensor', dims, batch };
    }
    return { t: 'tensor', dims: [fresh(), batchSize, fresh()], batch: { dim: 1, inner: ONE } };
  });
};

/** The fused nn.TransformerEncoderLayer / MultiheadAttention kernels (batch_first inputs, batch at dim 0). */
const fusedTransformer: Rule = (a, node, inputs) => {
  const x = asTensor(inputs[0]!);
  const rest = inputs.slice(1).filter(isBatched);
  if (!x || x.poisoned || rest.some((t) => t.poisoned)) return unknownOutputs(node, true);
  const ok = (t: TensorVal) => t.batch === null || (t.batch.dim === 0 && monoEq(t.batch.inner, ONE));
  if (!ok(x) || !rest.every(ok)) {
    a.mixing('runs a fused transformer kernel on tensors whose batch is not dim 0, so it would attend across samples');
    return unknownOutputs(node, true);
  }
  return node.out.map(([, type], i) =>
    type === 'Tensor' && i === 0 ? { ...x } : type === 'Tensor' ? (x.batch ? poisonedTensor() : publicTensor(null)) : fromType(type),
  );
};

/**
 * Nested-tensor conversions of nn.TransformerEncoder's inference fast path: a nested tensor from a
 * padded batch and its padding mask (row i from sample i's row and mask row), whether the mask is
 * left-aligned (a number computed from the mask's values), and back to a padded tensor (to the size
 * given, or the longest sample's: then a sample's shape depends on the others').
 */
const nestedFromMask: Rule = (a, node, inputs) => {
  const x = asTensor(inputs[0]!);
  const rest = inputs.slice(1).filter(isBatched);
  if (!x || x.poisoned || rest.some((t) => t.poisoned)) return unknownOutputs(node, true);
  const ok = (t: TensorVal) => t.batch === null || (t.batch.dim === 0 && monoEq(t.batch.inner, ONE));
  if (!ok(x) || !rest.every(ok)) {
    a.mixing('builds a nested tensor from tensors whose batch is not dim 0, so its rows would mix samples');
    return unknownOutputs(node, true);
  }
  const fromData = isBatched(inputs[0]!) || rest.length > 0;
  return node.out.map(([, type]) => (type === 'Tensor' ? { ...x } : { t: 'scalar', batch: fromData }));
};

const toPadded: Rule = (a, node, inputs) => {
  const x = asTensor(inputs[0]!);
  if (!x || x.poisoned) return unknownOutputs(node, true);
  if (x.batch !== null && (inputs[2] === undefined || knownConst(inputs[2])?.v === null)) {
    a.mixing("pads a nested batch to its longest sample, so each sample's shape depends on the others");
    return unknownOutputs(node, true);
  }
  return [{ ...x }];
};

/** tril/triu/diagonal on the last two dims. */
const lastTwo: Rule = lastDims(
  () => 2,
  (_i, x) => (x.dims ? x.dims.slice(-2) : null),
  'takes a triangle of its last two dimensions',
);

const padRule: Rule = (a, node, inputs) => {
  checkArguments(a, inputs);
  const x = asTensor(inputs[0]!);
  if (!x || x.poisoned) return unknownOutputs(node, true);
  const pads = intList(inputs[1]!);
  const rank = rankOf(x);
  if (!x.batch) return [publicTensor(rank === null ? null : Array.from({ length: rank }, () => fresh()))];
  if (!pads || rank === null) {
    a.mixing('pads dimensions the analysis cannot determine');
    return [poisonedTensor()];
  }
  const padded = Math.ceil(pads.length / 2);
  if (x.batch.dim >= rank - padded) {
    const batchPads = pads.slice(2 * (rank - 1 - x.batch.dim), 2 * (rank - 1 - x.batch.dim) + 2);
    if (!batchPads.every((p) => knownInt(p) === 0)) {
      a.mixing('pads the batch dimension, which adds rows that are not samples');
      return [poisonedTensor()];
    }
  }
  return [
    withDims(
      x,
      x.dims!.map((s, i) => (i >= rank - padded && i !== x.batch!.dim ? fresh() : s)),
      x.batch.dim,
    ),
  ];
};

/** one_hot(x, n): appends a dimension. */
const oneHotRule: Rule = (a, _node, inputs) => {
  checkArguments(a, inputs);
  const x = asTensor(inputs[0]!);
  if (!x || x.poisoned) return [poisonedTensor()];
  return [withDims(x, x.dims ? [...x.dims, fresh()] : null, x.batch?.dim ?? null)];
};

const mixAlways = (what: string): Rule => refuseBatched(what, [0, 1, 2]);

/**
 * The batch rules: for each allowed tensor operator, how the batch dimension of its output follows
 * from its inputs, and which uses combine samples. Keys are node kinds; the operator allowlist
 * (operator-policy.ts) must have a row for each (a test checks it).
 */
export const batchRules: Readonly<Record<string, Rule>> = Object.freeze<Record<string, Rule>>({
  // Layers
  'aten::linear': linearRule,
  'aten::bilinear': mixAlways('bilinear layer on batched tensors (not analysed)'),
  'aten::conv1d': spatialOp(convSpatial, true, 'the convolution mixes channels and space'),
  'aten::conv2d': spatialOp(convSpatial, true, 'the convolution mixes channels and space'),
  'aten::conv3d': spatialOp(convSpatial, true, 'the convolution mixes channels and space'),
  'aten::conv_transpose1d': spatialOp(convSpatial, true, 'the transposed convolution mixes channels and space'),
  'aten::conv_transpose2d': spatialOp(convSpatial, true, 'the transposed convolution mixes channels and space'),
  'aten::conv_transpose3d': spatialOp(convSpatial, true, 'the transposed convolution mixes channels and space'),
  'aten::_convolution': spatialOp(convSpatial, true, 'the convolution mixes channels and space'),
  'aten::convolution': spatialOp(convSpatial, true, 'the convolution mixes channels and space'),
  'aten::embedding': embeddingRule,
  'aten::layer_norm': layerNormRule,
  'aten::native_layer_norm': layerNormRule,
  'aten::group_norm': perSampleNorm,
  'aten::instance_norm': perSampleNorm,
  'aten::batch_norm': batchNormEval,
  'aten::scaled_dot_product_attention': attentionRule,
  'aten::lstm': recurrentRule,
  'aten::gru': recurrentRule,
  'aten::rnn_tanh': recurrentRule,
  'aten::rnn_relu': recurrentRule,
  'aten::_transformer_encoder_layer_fwd': fusedTransformer,
  'aten::_native_multi_head_attention': fusedTransformer,
  'aten::_transformer_decoder_only_layer_fwd': fusedTransformer,
  'aten::_native_decoder_only_multi_head_attention': fusedTransformer,
  'aten::_nested_tensor_from_mask': nestedFromMask,
  'aten::_nested_tensor_from_mask_left_aligned': nestedFromMask,
  'aten::to_padded_tensor': toPadded,
  // Pooling, padding, upsampling: over trailing spatial dims
  ...Object.fromEntries(
    [
      ['aten::max_pool1d', 1],
      ['aten::max_pool2d', 2],
      ['aten::max_pool3d', 3],
      ['aten::max_pool1d_with_indices', 1],
      ['aten::max_pool2d_with_indices', 2],
      ['aten::max_pool3d_with_indices', 3],
      ['aten::avg_pool1d', 1],
      ['aten::avg_pool2d', 2],
      ['aten::avg_pool3d', 3],
      ['aten::adaptive_avg_pool1d', 1],
      ['aten::adaptive_avg_pool2d', 2],
      ['aten::adaptive_avg_pool3d', 3],
      ['aten::adaptive_max_pool1d', 1],
      ['aten::adaptive_max_pool2d', 2],
      ['aten::reflection_pad1d', 1],
      ['aten::reflection_pad2d', 2],
      ['aten::replication_pad1d', 1],
      ['aten::replication_pad2d', 2],
      ['aten::upsample_nearest1d', 1],
      ['aten::upsample_nearest2d', 2],
      ['aten::upsample_bilinear2d', 2],
      ['aten::pixel_shuffle', 3],
    ].map(([kind, n]) => [kind, spatialOp(fixedSpatial(n as number), false, 'it pools, pads or resamples its trailing dimensions')]),
  ),
  'aten::pad': padRule,
  'aten::constant_pad_nd': padRule,
  // Elementwise (broadcasting)
  ...Object.fromEntries(
    [
      'add',
      'add_',
      'sub',
      'sub_',
      'rsub',
      'mul',
      'mul_',
      'div',
      'div_',
      'true_divide',
      'floor_divide',
      'remainder',
      'fmod',
      'pow',
      'atan2',
      'minimum',
      'maximum',
      'fmin',
      'fmax',
      'lerp',
      'addcmul',
      'addcdiv',
      'masked_fill',
      'masked_fill_',
      'eq',
      'ne',
      'lt',
      'le',
      'gt',
      'ge',
      'logical_and',
      'logical_or',
      'logical_xor',
      'bitwise_and',
      'prelu',
      'clamp',
      'clamp_',
      'clamp_min',
      'clamp_max',
      'clip',
      'copy_',
    ].map((op) => [`aten::${op}`, elementwise]),
  ),
  // Elementwise on one tensor
  ...Object.fromEntries(
    [
      'relu',
      'relu_',
      'relu6',
      'leaky_relu',
      'leaky_relu_',
      'elu',
      'elu_',
      'selu',
      'selu_',
      'celu',
      'celu_',
      'gelu',
      'silu',
      'silu_',
      'mish',
      'hardtanh',
      'hardtanh_',
      'hardsigmoid',
      'hardsigmoid_',
      'hardswish',
      'hardswish_',
      'sigmoid',
      'sigmoid_',
      'tanh',
      'tanh_',
      'softplus',
      'log_sigmoid',
      'threshold',
      'threshold_',
      'hardshrink',
      'softshrink',
      'neg',
      'abs',
      'sign',
      'square',
      'sqrt',
      'rsqrt',
      'reciprocal',
      'exp',
      'exp2',
      'expm1',
      'log',
      'log2',
      'log10',
      'log1p',
      'sin',
      'cos',
      'tan',
      'sinh',
      'cosh',
      'asin',
      'acos',
      'atan',
      'erf',
      'floor',
      'ceil',
      'round',
      'trunc',
      'frac',
      'nan_to_num',
      'isnan',
      'isinf',
      'isfinite',
      'logical_not',
      'bitwise_not',
      'dropout',
      'dropout_',
      'alpha_dropout',
      'native_dropout',
      'contiguous',
      'clone',
      'detach',
      'to',
      'type_as',
      'fill_',
      'zero_',
      'bernoulli',
      'bernoulli_',
    ].map((op) => [`aten::${op}`, keep]),
  ),
  // feature dropout draws one mask per (sample, channel): per sample when the batch is dim 0.
  'aten::feature_dropout': keep,
  'aten::feature_alpha_dropout': keep,
  // Along one dimension (softmax, scans)
  'aten::softmax': alongDim(1, 'softmax normalises'),
  'aten::log_softmax': alongDim(1, 'log_softmax normalises'),
  'aten::_masked_softmax': alongDim(2, 'softmax normalises'),
  'aten::glu': alongDim(1, 'glu splits', -1),
  'aten::cumsum': alongDim(1, 'cumsum accumulates'),
  'aten::cumprod': alongDim(1, 'cumprod accumulates'),
  'aten::sort': alongDim(1, 'sort orders values', -1),
  'aten::argsort': alongDim(1, 'argsort orders values', -1),
  'aten::topk': alongDim(2, 'topk selects values', -1),
  'aten::flip': (a, node, inputs) => {
    const x = asTensor(inputs[0]!);
    const dims = x ? dimList(inputs[1]!, rankOf(x)) : null;
    if (x?.batch && !x.poisoned && (!dims || dims.includes(x.batch.dim))) {
      a.mixing('flips the batch dimension, which moves samples to other rows');
      return [poisonedTensor()];
    }
    return unary(a, node, inputs);
  },
  'aten::roll': (a, node, inputs) => {
    const x = asTensor(inputs[0]!);
    const dims = x ? dimList(inputs[2]!, rankOf(x)) : null;
    if (x?.batch && !x.poisoned && (!dims || dims.length === 0 || dims.includes(x.batch.dim))) {
      a.mixing('rolls the batch dimension (or the flattened tensor), which moves values between samples');
      return [poisonedTensor()];
    }
    return unary(a, node, inputs);
  },
  'aten::repeat_interleave': (a, node, inputs) => {
    const x = asTensor(inputs[0]!);
    const d = x && node.in.length >= 3 ? normDim(inputs[2]!, rankOf(x)) : null;
    if (x?.batch && !x.poisoned && (d === null || d === x.batch.dim || isBatched(inputs[1]!))) {
      a.mixing('repeats elements along the batch dimension (or a flattened tensor), which moves values between samples');
      return [poisonedTensor()];
    }
    checkArguments(a, inputs);
    return [x?.batch ? withDims(x, x.dims ? x.dims.map((s, i) => (i === d ? fresh() : s)) : null, x.batch.dim) : publicTensor(null)];
  },
  // Reductions
  ...Object.fromEntries(
    [
      ['sum', 1, 2],
      ['mean', 1, 2],
      ['prod', 1, 2],
      ['std', 1, 3],
      ['var', 1, 3],
      ['std_mean', 1, 3],
      ['var_mean', 1, 3],
      ['logsumexp', 1, 2],
      ['amax', 1, 2],
      ['amin', 1, 2],
      ['all', 1, 2],
      ['any', 1, 2],
      ['norm', 2, 3],
      ['linalg_vector_norm', 2, 3],
      ['frobenius_norm', 1, 2],
      ['argmax', 1, 2],
      ['argmin', 1, 2],
      ['max', 1, 2],
      ['min', 1, 2],
    ].map(([op, dimIndex, keepIndex]) => [`aten::${op}`, reduceOrElementwise(op as string, dimIndex as number, keepIndex as number)]),
  ),
  'aten::cosine_similarity': alongDim(2, 'cosine_similarity reduces', 1),
  'aten::pairwise_distance': alongDim(99, 'pairwise_distance reduces', -1),
  'aten::cdist': mixAlways('cdist computes distances between rows, which across a batched operand pairs different samples'),
  // Matrix products
  'aten::matmul': matmulRule,
  'aten::mm': matmulRule,
  'aten::bmm': matmulRule,
  'aten::addmm': matmulRule,
  'aten::baddbmm': matmulRule,
  'aten::addbmm': matmulRule,
  'aten::addmv': mixAlways('addmv multiplies a matrix by a vector (not analysed for batched operands)'),
  'aten::mv': mixAlways('mv multiplies a matrix by a vector (not analysed for batched operands)'),
  'aten::dot': mixAlways('dot contracts its operands completely'),
  'aten::outer': mixAlways('outer pairs every element with every other (not analysed for batched operands)'),
  'aten::tensordot': mixAlways('tensordot contracts dimensions (not analysed for batched operands)'),
  'aten::einsum': einsumRule,
  // Shapes
  'aten::view': viewRule,
  'aten::reshape': viewRule,
  'aten::view_as': viewRule,
  'aten::reshape_as': viewRule,
  'aten::flatten': flattenRule,
  'aten::unflatten': unflattenRule,
  'aten::squeeze': squeezeRule,
  'aten::unsqueeze': unsqueezeRule,
  'aten::permute': permuteRule,
  'aten::transpose': transposeRule,
  'aten::swapaxes': transposeRule,
  'aten::t': tRule,
  'aten::movedim': movedimRule,
  'aten::expand': expandRule,
  'aten::expand_as': expandRule,
  'aten::repeat': repeatRule,
  'aten::tile': repeatRule,
  'aten::cat': joinRule(false),
  'aten::concat': joinRule(false),
  'aten::stack': joinRule(true),
  'aten::hstack': mixAlways('hstack concatenates along a dimension that depends on the rank'),
  'aten::vstack': mixAlways('vstack concatenates along the first dimension, the batch'),
  'aten::split': splitRule('split'),
  'aten::split_with_sizes': splitRule('split'),
  'aten::chunk': splitRule('chunk'),
  'aten::unbind': splitRule('unbind'),
  'aten::narrow': indexAlong('narrow'),
  'aten::select': indexAlong('select'),
  'aten::slice': indexAlong('slice'),
  'aten::index': indexRule,
  'aten::index_select': indexedAlong(1, 'index_select picks values'),
  'aten::gather': indexedAlong(1, 'gather picks values'),
  'aten::scatter': indexedAlong(1, 'scatter writes values'),
  'aten::scatter_add': indexedAlong(1, 'scatter_add writes values'),
  'aten::index_add': indexedAlong(1, 'index_add writes values'),
  'aten::index_fill': indexedAlong(1, 'index_fill writes values'),
  'aten::index_put_': refuseBatched('index_put_ writes values at computed positions', [0, 1, 2]),
  // where(condition) alone is nonzero(): index tensors as many as the data says.
  'aten::where': (a, node, inputs) =>
    node.in.length === 1
      ? refuseBatched('where(condition) lists the positions of nonzero values, as many as the data holds')(a, node, inputs)
      : elementwise(a, node, inputs),
  'aten::masked_select': refuseBatched('masked_select keeps a data-dependent number of values from across the batch', [0, 1]),
  'aten::tril': lastTwo,
  'aten::triu': lastTwo,
  'aten::diagonal': mixAlways('diagonal takes a diagonal of two dimensions (not analysed for batched operands)'),
  'aten::diag': mixAlways('diag takes a diagonal (not analysed for batched operands)'),
  'aten::one_hot': oneHotRule,
  // Creation
  'aten::zeros': createRule(0),
  'aten::ones': createRule(0),
  'aten::full': createRule(0, 1),
  'aten::rand': createRule(0),
  'aten::randn': createRule(0),
  'aten::eye': (a, _node, inputs) => {
    if (inputs.some(carriesBatch)) a.flow('creates an identity matrix whose size depends on the number of samples');
    return [publicTensor(null)];
  },
  'aten::new_zeros': newRule(null),
  'aten::new_ones': newRule(null),
  'aten::new_full': newRule(2),
  'aten::zeros_like': likeRule,
  'aten::ones_like': likeRule,
  'aten::full_like': (a, node, inputs) => {
    if (carriesBatch(inputs[1]!)) a.flow('fills a tensor with a value computed from the number of samples, which is private');
    return likeRule(a, node, inputs);
  },
  'aten::rand_like': likeRule,
  'aten::randn_like': likeRule,
  'aten::arange': arangeRule,
  'aten::linspace': (a, _node, inputs) => {
    if (inputs.some(carriesBatch)) a.flow('creates a range whose bounds depend on the number of samples');
    return [publicTensor([fresh()])];
  },
  'aten::tensor': (a, _node, inputs) => {
    if (carriesBatch(inputs[0]!)) a.flow('makes a tensor of the number of samples, which is private');
    return [publicTensor(null)];
  },
  'aten::scalar_tensor': (a, _node, inputs) => {
    if (carriesBatch(inputs[0]!)) a.flow('makes a tensor of the number of samples, which is private');
    return [publicTensor([])];
  },
  'aten::as_tensor': (a, _node, inputs) => {
    if (carriesBatch(inputs[0]!)) a.flow('makes a tensor of the number of samples, which is private');
    return [inputs[0]?.t === 'tensor' ? { ...inputs[0]! } : publicTensor(null)];
  },
});

/**
 * Allowed operators with no rule of their own: Python-value plumbing and metadata that models use on
 * public values (dicts, string search, range bookkeeping, strides). On public inputs they give public
 * outputs; a batched tensor or a B-derived number reaching one is refused ("cannot establish").
 * prim::If and prim::Loop are interpreted by the analysis itself.
 */
export const publicOnlyOperators: ReadonlySet<string> = new Set([
  'prim::If',
  'prim::Loop',
  'prim::SetAttr',
  'prim::DictConstruct',
  'prim::ConstantChunk',
  'prim::abs',
  'prim::type',
  'aten::stride',
  'aten::is_contiguous',
  'aten::__xor__',
  'aten::divmod',
  'aten::__contains__',
  'aten::__range_length',
  'aten::__derive_index',
  'aten::pop',
  'aten::dict',
  'aten::keys',
  'aten::values',
  'aten::items',
  'aten::find',
]);

/** aten::max/min have elementwise (two tensors) and reduction overloads; the others only reductions. */
function reduceOrElementwise(op: string, dimIndex: number, keepIndex: number): Rule {
  const reduction = reduce(dimIndex, keepIndex, `${op} reduces`);
  return (a, node, inputs) => {
    if ((op === 'max' || op === 'min') && inputs[1]?.t === 'tensor') return elementwise(a, node, inputs);
    if (op === 'norm' && node.in.length <= 2) return reduce(99, null, 'norm reduces')(a, node, inputs);
    return reduction(a, node, inputs);
  };
}

// --- Entry points ------------------------------------------------------------------------------------

function parseGraph(text: string): GraphJson {
  const graph = JSON.parse(text) as GraphJson;
  if (!graph || !Array.isArray(graph.in) || !Array.isArray(graph.nodes) || !Array.isArray(graph.out)) {
    throw new Error('The forward graph is malformed');
  }
  return graph;
}

/** Analyses the graph with forward inputs of the given ranks (one per input, each with the batch at dim 0). */
export function analyseGraph(graph: GraphJson, ranks: readonly number[]): BatchProblem[] {
  const analysis = new Analysis();
  current = analysis;
  try {
    return runAnalysis(analysis, graph, ranks);
  } finally {
    current = null;
  }
}

function runAnalysis(analysis: Analysis, graph: GraphJson, ranks: readonly number[]): BatchProblem[] {
  const [self, ...inputs] = graph.in;
  if (self) analysis.env.set(self[0]!, OTHER);
  inputs.forEach(([id, type], i) => {
    if (type === 'Tensor') analysis.inputs.add(id);
    if (type !== 'Tensor' || ranks[i]! === undefined) {
      analysis.env.set(id, fromType(type));
      return;
    }
    const dims: IntVal[] = [{ t: 'int', m: { coef: 1, syms: [BATCH] }, batch: true }];
    for (let d = 1; d < ranks[i]!; d += 1) dims.push({ t: 'int', m: { coef: 1, syms: [`#in${i}.${d}`] }, batch: false });
    analysis.env.set(id, { t: 'tensor', dims, batch: { dim: 0, inner: ONE } });
  });
  for (const node of graph.nodes) analysis.visit(node);
  const out = analysis.get(graph.out[0]!);
  if (!analysis.poisonSite && hasPoison(out)) analysis.poisonSite = { k: 'prim::Return', in: [], out: [] };
  if (
    out.t === 'tensor' &&
    !out.poisoned &&
    out.batch &&
    (out.batch.dim !== 0 || !monoEq(out.batch.inner, ONE) || !monoEq(out.dims?.[0]?.m ?? null, { coef: 1, syms: [BATCH] }))
  ) {
    analysis.node = { k: 'prim::Return', in: [], out: [] };
    analysis.mixing('(the output) does not have one row per sample in dimension 0: the loss would combine the samples of a batch');
  }
  if (analysis.problems.length === 0 && analysis.poisonSite) {
    analysis.node = analysis.poisonSite;
    analysis.mixing('is where the analysis lost track of the batch dimension, so it cannot establish that samples stay apart');
  }
  return analysis.problems;
}

/** Rank tuples to try: every combination of 1..MAX_INPUT_RANK for up to two inputs, else equal ranks. */
function rankTuples(inputs: number): number[][] {
  const ranks = [...Array(MAX_INPUT_RANK).keys()].map((r) => r + 1);
  if (inputs === 0) return [[]];
  if (inputs > MAX_RANK_PRODUCT_INPUTS) return ranks.map((r) => new Array(inputs).fill(r));
  let tuples: number[][] = [[]];
  for (let i = 0; i < inputs; i += 1) tuples = tuples.flatMap((t) => ranks.map((r) => [...t, r]));
  return tuples;
}

/** Runs the analysis for every candidate rank tuple of the forward's tensor inputs. */
export function analyseBatchIndependence(graphJson: string): BatchAnalysis {
  const graph = parseGraph(graphJson);
  const inputs = Math.max(0, graph.in.length - 1);
  const ranks: Record<string, BatchProblem[]> = {};
  for (const tuple of rankTuples(inputs)) ranks[tuple.join(',')] = analyseGraph(graph, tuple);
  return { inputs, ranks };
}

/** The key of `ranks` for datasets whose inputs have these ranks (the sample dimension included). */
export function rankKey(ranks: readonly number[]): string {
  return ranks.join(',');
}

/** The problems for the given input ranks; a refusal naming the limit when a rank was not tried. */
export function problemsForRanks(analysis: BatchAnalysis, ranks: readonly number[]): BatchProblem[] {
  const found = analysis.ranks[rankKey(ranks)]!;
  if (found) return found;
  return [
    {
      operator: 'prim::Param',
      location: '',
      rule: 'batch-mixing',
      message:
        `the analysis tried inputs of rank 1 to ${MAX_INPUT_RANK} (the sample dimension included), and this dataset's inputs ` +
        `have rank ${ranks.join(', ')}`,
    },
  ];
}

/** The rank tuples at which the model has no problem. */
export function acceptedRanks(analysis: BatchAnalysis): string[] {
  return Object.entries(analysis.ranks)
    .filter(([, problems]) => problems.length === 0)
    .map(([key]) => key);
}
