// A pickle reader that executes nothing: it replays the opcodes of an untrusted pickle on a symbolic
// stack and returns the value tree, with globals, calls (REDUCE/NEWOBJ) and persistent ids kept as
// inert nodes for the caller to inspect. Only the opcodes PyTorch's serializers emit are accepted;
// anything else, and any malformed or oversized stream, is a PickleError. Nothing is imported, called
// or allocated beyond the stream's own size and the explicit limits below.

export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleTuple
  | PickleList
  | PickleDict
  | PickleSet
  | PickleGlobal
  | PickleCall
  | PicklePersistent;

export interface PickleTuple {
  kind: 'tuple';
  items: PickleValue[];
}
export interface PickleList {
  kind: 'list';
  items: PickleValue[];
}
export interface PickleDict {
  kind: 'dict';
  entries: [PickleValue, PickleValue][];
}
export interface PickleSet {
  kind: 'set';
  items: PickleValue[];
}
/** A reference to `module.name`; never resolved. */
export interface PickleGlobal {
  kind: 'global';
  module: string;
  name: string;
}
/** `fn(*args)` as REDUCE or `cls.__new__(cls, *args)` as NEWOBJ, plus any BUILD state. Never called. */
export interface PickleCall {
  kind: 'call';
  via: 'reduce' | 'newobj';
  fn: PickleValue;
  args: PickleValue[];
  state: PickleValue[];
}
/** A persistent id (BINPERSID), e.g. PyTorch's ('storage', type, key, location, numel). */
export interface PicklePersistent {
  kind: 'persistent';
  pid: PickleValue;
}

export class PickleError extends Error {
  override readonly name = 'PickleError';
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`);
  }
}

export interface PickleLimits {
  /** Opcodes executed at most. */
  maxOps: number;
  /** Memo entries at most. */
  maxMemo: number;
  /** Nesting of MARKs at most. */
  maxMarks: number;
}

const defaultLimits: PickleLimits = { maxOps: 5_000_000, maxMemo: 1_000_000, maxMarks: 10_000 };

const MARK = Symbol('mark');
type StackItem = PickleValue | typeof MARK;

/** Reads one pickle (up to STOP) from `bytes` without executing it. */
export function readPickle(bytes: Uint8Array, limits: Partial<PickleLimits> = {}): PickleValue {
  const limit = { ...defaultLimits, ...limits };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const latin1 = new TextDecoder('latin1');
  let pos = 0;
  let stack: StackItem[] = [];
  const marks: StackItem[][] = [];
  const memo = new Map<number, PickleValue>();
  let ops = 0;

  const fail = (message: string, at = pos): never => {
    throw new PickleError(message, at);
  };
  const need = (n: number): void => {
    if (n < 0 || pos + n > bytes.length) fail(`truncated: needs ${n} more bytes`);
  };
  /** Moves past n bytes and returns where they start. */
  const advance = (n: number): number => {
    need(n);
    pos += n;
    return pos - n;
  };
  const u8 = (): number => bytes[advance(1)]!;
  const u16 = (): number => view.getUint16(advance(2), true);
  const u32 = (): number => view.getUint32(advance(4), true);
  const i32 = (): number => view.getInt32(advance(4), true);
  const u64 = (): number => {
    need(8);
    const value = view.getBigUint64(pos, true);
    pos += 8;
    if (value > BigInt(bytes.length)) fail('length beyond the end of the stream');
    return Number(value);
  };
  const take = (n: number): Uint8Array => {
    need(n);
    pos += n;
    return bytes.subarray(pos - n, pos);
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('unterminated text argument');
    const text = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return text;
  };
  const utf8 = (n: number): string => {
    const bytes = take(n); // outside the try: a truncated string is reported as truncated
    try {
      return decoder.decode(bytes);
    } catch {
      return fail('invalid UTF-8 in string');
    }
  };
  const pop = (): PickleValue => {
    const value = stack.pop();
    if (value === undefined) fail('stack underflow');
    if (value === MARK) fail('unexpected MARK on the stack');
    return value as PickleValue;
  };
  const top = (): PickleValue => {
    const value = stack[stack.length - 1];
    if (value === undefined || value === MARK) return fail('stack underflow');
    return value;
  };
  const popMark = (): PickleValue[] => {
    const items = stack as PickleValue[];
    if (items.includes(MARK as never)) fail('nested MARK inside a marked group');
    const previous = marks.pop();
    if (!previous) fail('no MARK to pop to');
    stack = previous!;
    return items;
  };
  const push = (value: PickleValue): void => {
    stack.push(value);
  };
  const memoize = (index: number, value: PickleValue): void => {
    if (!memo.has(index) && memo.size >= limit.maxMemo) fail('memo too large');
    memo.set(index, value);
  };
  const recall = (index: number): PickleValue => {
    if (!memo.has(index)) fail(`memo entry ${index} does not exist`);
    return memo.get(index)!;
  };
  const signedLittleEndian = (data: Uint8Array): bigint => {
    let value = 0n;
    for (let i = data.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(data[i]!);
    if (data.length > 0 && (data[data.length - 1]! & 0x80) !== 0) value -= 1n << BigInt(8 * data.length);
    return value;
  };
  const smallest = (value: bigint): number | bigint =>
    value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;

  while (true) {
    if (++ops > limit.maxOps) fail('too many opcodes');
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail('unsupported pickle protocol', at);
        break;
      case 0x95: // FRAME: a length hint only
        u64();
        break;
      case 0x2e: // STOP
        if (marks.length > 0) fail('STOP inside a MARK', at);
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`, at);
        return pop();
      case 0x28: // MARK
        if (marks.length >= limit.maxMarks) fail('MARKs nested too deeply', at);
        marks.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        if (stack.length === 0) fail('stack underflow', at);
        stack.pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x4a: // BININT
        push(i32());
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x8a: // LONG1
        push(smallest(signedLittleEndian(take(u8()))));
        break;
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0) fail('negative length', at);
        push(smallest(signedLittleEndian(take(n))));
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x58: // BINUNICODE
        push(utf8(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        push(utf8(u8()));
        break;
      case 0x8d: // BINUNICODE8
        push(utf8(u64()));
        break;
      case 0x54: // BINSTRING
        push(latin1.decode(take(i32())));
        break;
      case 0x55: // SHORT_BINSTRING
        push(latin1.decode(take(u8())));
        break;
      case 0x42: // BINBYTES
        push(take(u32()));
        break;
      case 0x43: // SHORT_BINBYTES
        push(take(u8()));
        break;
      case 0x8e: // BINBYTES8
        push(take(u64()));
        break;
      case 0x29: // EMPTY_TUPLE
        push({ kind: 'tuple', items: [] });
        break;
      case 0x74: // TUPLE
        push({ kind: 'tuple', items: popMark() });
        break;
      case 0x85: // TUPLE1
        push({ kind: 'tuple', items: [pop()] });
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        push({ kind: 'tuple', items: [pop(), b] });
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        push({ kind: 'tuple', items: [pop(), b, c] });
        break;
      }
      case 0x5d: // EMPTY_LIST
        push({ kind: 'list', items: [] });
        break;
      case 0x6c: // LIST
        push({ kind: 'list', items: popMark() });
        break;
      case 0x61: {
        // APPEND
        const value = pop();
        const list = top();
        if (typeof list !== 'object' || list === null || !('kind' in list) || list.kind !== 'list') fail('APPEND to a non-list', at);
        (list as PickleList).items.push(value);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = top();
        if (typeof list !== 'object' || list === null || !('kind' in list) || list.kind !== 'list') fail('APPENDS to a non-list', at);
        (list as PickleList).items.push(...items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        push({ kind: 'dict', entries: [] });
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        if (items.length % 2 !== 0) fail('DICT with an odd number of items', at);
        const entries: [PickleValue, PickleValue][] = [];
        for (let i = 0; i < items.length; i += 2) entries.push([items[i]!, items[i + 1]!]);
        push({ kind: 'dict', entries });
        break;
      }
      case 0x73: {
        // SETITEM
        const value = pop();
        const key = pop();
        dictOn(top(), at).entries.push([key, value]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2 !== 0) fail('SETITEMS with an odd number of items', at);
        const dict = dictOn(top(), at);
        for (let i = 0; i < items.length; i += 2) dict.entries.push([items[i]!, items[i + 1]!]);
        break;
      }
      case 0x8f: // EMPTY_SET
        push({ kind: 'set', items: [] });
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const set = top();
        if (typeof set !== 'object' || set === null || !('kind' in set) || set.kind !== 'set') fail('ADDITEMS to a non-set', at);
        (set as PickleSet).items.push(...items);
        break;
      }
      case 0x91: // FROZENSET
        push({ kind: 'set', items: popMark() });
        break;
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        push({ kind: 'global', module, name });
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings', at);
        push({ kind: 'global', module: module as string, name: name as string });
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        push({ kind: 'call', via: 'reduce', fn, args: tupleItems(args, at), state: [] });
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        push({ kind: 'call', via: 'newobj', fn: cls, args: tupleItems(args, at), state: [] });
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const target = top();
        if (typeof target !== 'object' || target === null || !('kind' in target) || target.kind !== 'call')
          fail('BUILD on a value that is not an object', at);
        (target as PickleCall).state.push(state);
        break;
      }
      case 0x51: // BINPERSID
        push({ kind: 'persistent', pid: pop() });
        break;
      case 0x71: // BINPUT
        memoize(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memoize(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memoize(memo.size, top());
        break;
      case 0x68: // BINGET
        push(recall(u8()));
        break;
      case 0x6a: // LONG_BINGET
        push(recall(u32()));
        break;
      default:
        fail(`opcode 0x${op.toString(16).padStart(2, '0')} is not allowed`, at);
    }
  }

  function dictOn(value: PickleValue, at: number): PickleDict {
    if (typeof value !== 'object' || value === null || !('kind' in value) || value.kind !== 'dict') fail('SETITEM on a non-dict', at);
    return value as PickleDict;
  }
  function tupleItems(value: PickleValue, at: number): PickleValue[] {
    if (typeof value !== 'object' || value === null || !('kind' in value) || value.kind !== 'tuple')
      fail('call arguments are not a tuple', at);
    return (value as PickleTuple).items;
  }
}

export function isGlobal(value: PickleValue, module: string, name: string): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    'kind' in value &&
    value.kind === 'global' &&
    value.module === module &&
    value.name === name
  );
}

/** Visits every node of a value tree once (shared nodes from the memo are visited once). */
export function walkPickle(root: PickleValue, visit: (value: PickleValue) => void): void {
  const seen = new Set<object>();
  const pending: PickleValue[] = [root];
  while (pending.length > 0) {
    const value = pending.pop()!;
    if (typeof value === 'object' && value !== null) {
      if (seen.has(value)) continue;
      seen.add(value);
    }
    visit(value);
    if (typeof value !== 'object' || value === null || value instanceof Uint8Array) continue;
    switch (value.kind) {
      case 'tuple':
      case 'list':
      case 'set':
        pending.push(...value.items);
        break;
      case 'dict':
        for (const [k, v] of value.entries) pending.push(k, v);
        break;
      case 'call':
        pending.push(value.fn, ...value.args, ...value.state);
        break;
      case 'persistent':
        pending.push(value.pid);
        break;
      case 'global':
        break;
    }
  }
}
