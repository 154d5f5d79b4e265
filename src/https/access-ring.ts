// The access log's hand-off between the serving thread and the log's own thread: a ring of
// fixed-size records (the numbers of a request's line) and a ring of bytes (its strings), both
// in shared memory. The serving thread copies a request's fields in (a few stores and one write
// of its strings joined: about 1.8k instructions, 0.25-0.35 us in a loop of its own); the log's
// thread reads them back, formats and writes the lines. A reopen of the log's file (SIGUSR1) is a
// record of its own, in order with the lines.
// One writer, one reader, in order. A full ring refuses the line (it is lost and said so):
// memory stays bounded behind a stalled disk, and serving goes on.
//
// Strings that repeat from line to line (the service, the client, the method, the TLS version)
// are copied only when they differ from the line before, and the reader keeps the last ones.
import type { AccessEntry } from './access-line.js';
import { CapturedLine } from './access-line.js';

/** Records the ring holds (a power of two): about 0.4 s of this proxy's keep-alive requests. */
const SLOTS = 16_384;
/** Bytes of strings the ring holds (a power of two). */
const BYTES = 4 * 1024 * 1024;

/** Where each of a record's numbers sits (Float64Array indices within its slot). */
const F = {
  endedAt: 0,
  durationMs: 1,
  backendMs: 2,
  status: 3,
  bytesIn: 4,
  bytesOut: 5,
  bodyBytesOut: 6,
  grpcStatus: 7,
  protocol: 8,
  /** Where the record's strings begin, as a count of bytes ever written (mod 2^32). */
  start: 9,
  // Each string's length in bytes: -1 for a repeated one unchanged, or an absent optional one.
  service: 10,
  client: 11,
  method: 12,
  tls: 13,
  target: 14,
  requestId: 15,
  referer: 16,
  agent: 17,
  reason: 18,
} as const;
const FIELDS = 19;

/**
 * Int32 control words, those one side writes often on a cache line (64 bytes) apart from those
 * the other writes: two threads on two cores writing one line pass it back and forth on every
 * write, about as dear as the rest of a record.
 */
const C = {
  /** Records published by the writer, ever (mod 2^32). */
  published: 0,
  /** Records the reader is done with, ever (mod 2^32). */
  consumed: 16,
  /** Bytes the reader is done with, ever (mod 2^32): up to the end of its last record's strings. */
  freed: 17,
  /** Changed (and notified) to wake the reader. */
  wake: 32,
  /** 1 while the reader waits for the next record with none waiting: the writer then wakes it. */
  sleeping: 33,
} as const;
const CONTROL_WORDS = 48;
/** The reader tells what it is done with every this many records, and when none is left. */
const RELEASE_EVERY = 256;
/**
 * A reader that waits for a batch to gather (not asleep) is woken every this many records, so
 * that it drains the ring before it fills.
 */
const WAKE_EVERY = 1024;

const PROTOCOLS: readonly AccessEntry['protocol'][] = ['HTTP/1.1', 'h2', 'HTTP/1.0'];

/**
 * The status of a record that is no request's: the log's file is to be reopened there, after the
 * lines before it and before those after it (AccessRingWriter.reopenHere).
 */
export const REOPEN_HERE = -1;

/** The shared memory of one ring, passed to the log's thread as is. */
export interface AccessRingMemory {
  readonly control: SharedArrayBuffer;
  readonly fields: SharedArrayBuffer;
  readonly bytes: SharedArrayBuffer;
}

export function createAccessRing(): AccessRingMemory {
  return {
    control: new SharedArrayBuffer(CONTROL_WORDS * 4),
    fields: new SharedArrayBuffer(SLOTS * FIELDS * 8),
    bytes: new SharedArrayBuffer(BYTES),
  };
}

/** The serving thread's side. */
export class AccessRingWriter {
  readonly #control: Int32Array;
  readonly #fields: Float64Array;
  readonly #bytes: Buffer;
  readonly #combined: boolean;
  #published = 0;
  /** Bytes ever written (mod 2^32), padding at the ring's end included. */
  #written = 0;
  /** The reader's counts as last read: read again only when they say the ring is full. */
  #consumed = 0;
  #freed = 0;
  // The repeated strings of the last record published.
  #service: string | undefined;
  #client: string | undefined;
  #method: string | undefined;
  #tls: string | undefined;
  /** A reopen asked while the ring was full: its record goes in before the next line's. */
  #reopenPending = false;

  constructor(memory: AccessRingMemory, combined: boolean) {
    this.#control = new Int32Array(memory.control);
    this.#fields = new Float64Array(memory.fields);
    this.#bytes = Buffer.from(memory.bytes);
    this.#combined = combined;
  }

  /** Records published, ever (mod 2^32). */
  get published(): number {
    return this.#published;
  }

  /**
   * Copies the line of a request that ended at `now` (a performance.now()) into the ring; false
   * when the ring has no room for it (the line is lost).
   */
  write(entry: AccessEntry, now: number): boolean {
    if (this.#reopenPending) {
      this.reopenHere();
      if (this.#reopenPending) return false;
    }
    const control = this.#control;
    const n = this.#published;
    if (!this.#roomForRecord(n)) return false;
    const head = entry.head;
    const method = head === null ? '' : head.method;
    const target = head === null ? '' : head.target;
    const referer = this.#combined && head !== null ? head.header('referer') : undefined;
    const agent = this.#combined && head !== null ? head.header('user-agent') : undefined;
    const { service, client, tls, requestId, reason } = entry;
    const newService = service !== this.#service;
    const newClient = client !== this.#client;
    const newMethod = method !== this.#method;
    const newTls = tls !== this.#tls;
    // At most: one byte a character (latin1), three for the UTF-8 of text that may be any.
    const bound =
      (newService ? service.length * 3 : 0) +
      (newClient ? client.length : 0) +
      (newMethod ? method.length : 0) +
      (newTls ? tls.length : 0) +
      target.length +
      requestId.length +
      (reason === undefined ? 0 : reason.length * 3) +
      (referer === undefined ? 0 : referer.length) +
      (agent === undefined ? 0 : agent.length);
    // The strings of one record lie in one piece: when they would cross the ring's end, the rest
    // of it is left unused and they begin at its start.
    const at = this.#written & (BYTES - 1);
    const pad = at + bound > BYTES ? BYTES - at : 0;
    if (pad + bound > BYTES - ((this.#written - this.#freed) >>> 0)) {
      this.#freed = Atomics.load(control, C.freed) >>> 0;
      if (pad + bound > BYTES - ((this.#written - this.#freed) >>> 0)) return false;
    }
    const bytes = this.#bytes;
    const start = pad === 0 ? at : 0;
    let o = start;
    const f = this.#fields;
    const slot = (n & (SLOTS - 1)) * FIELDS;
    if (newService) {
      const length = bytes.write(service, o, 'utf8');
      f[slot + F.service] = length;
      o += length;
      this.#service = service;
    } else f[slot + F.service] = -1;
    // The strings of a byte a character (as parsed from the wire), joined and written in one call:
    // Buffer#write costs about 650 instructions a call into C++ whatever the length, and joining
    // two strings about 150.
    let latin1 = '';
    if (newClient) {
      f[slot + F.client] = client.length;
      latin1 = client;
      this.#client = client;
    } else f[slot + F.client] = -1;
    if (newMethod) {
      f[slot + F.method] = method.length;
      latin1 += method;
      this.#method = method;
    } else f[slot + F.method] = -1;
    if (newTls) {
      f[slot + F.tls] = tls.length;
      latin1 += tls;
      this.#tls = tls;
    } else f[slot + F.tls] = -1;
    f[slot + F.target] = target.length;
    f[slot + F.requestId] = requestId.length;
    latin1 += target + requestId;
    if (referer === undefined) f[slot + F.referer] = -1;
    else {
      f[slot + F.referer] = referer.length;
      latin1 += referer;
    }
    if (agent === undefined) f[slot + F.agent] = -1;
    else {
      f[slot + F.agent] = agent.length;
      latin1 += agent;
    }
    o += bytes.write(latin1, o, 'latin1');
    if (reason === undefined) f[slot + F.reason] = -1;
    else {
      const length = bytes.write(reason, o, 'utf8');
      f[slot + F.reason] = length;
      o += length;
    }
    const startCount = (this.#written + pad) >>> 0;
    f[slot + F.start] = startCount;
    this.#written = (startCount + (o - start)) >>> 0;
    f[slot + F.endedAt] = now;
    f[slot + F.durationMs] = head === null ? 0 : now - entry.startedAt;
    f[slot + F.backendMs] = head === null || entry.backendAt === 0 ? -1 : entry.backendAt - entry.startedAt;
    f[slot + F.status] = entry.status;
    f[slot + F.bytesIn] = entry.bytesIn;
    f[slot + F.bytesOut] = entry.bytesOut;
    f[slot + F.bodyBytesOut] = entry.bytesOut - entry.headBytesOut;
    f[slot + F.grpcStatus] = entry.grpcStatus;
    f[slot + F.protocol] = entry.protocol === 'HTTP/1.1' ? 0 : entry.protocol === 'h2' ? 1 : 2;
    this.#publish(n);
    return true;
  }

  /**
   * Asks the reader to reopen the log's file after the lines written so far and before those
   * written next (logrotate moved it: SIGUSR1), by a record of its own: the reopen and the lines
   * reach the log's thread in one order. When the ring is full, the record goes in before the next
   * line that finds room.
   */
  reopenHere(): void {
    const n = this.#published;
    this.#reopenPending = !this.#roomForRecord(n);
    if (this.#reopenPending) return;
    const f = this.#fields;
    const slot = (n & (SLOTS - 1)) * FIELDS;
    f.fill(0, slot, slot + F.start);
    f[slot + F.status] = REOPEN_HERE;
    // No strings: the repeated ones unchanged, the others absent.
    f[slot + F.start] = this.#written;
    f.fill(-1, slot + F.service, slot + FIELDS);
    this.#publish(n);
  }

  /** Whether record `n` has a slot: the reader has read the one SLOTS before it. */
  #roomForRecord(n: number): boolean {
    if ((n - this.#consumed) >>> 0 < SLOTS) return true;
    this.#consumed = Atomics.load(this.#control, C.consumed) >>> 0;
    return (n - this.#consumed) >>> 0 < SLOTS;
  }

  /** Record `n`, written, becomes the reader's; a reader asleep is woken. */
  #publish(n: number): void {
    const control = this.#control;
    // Everything written before is the reader's once this store is seen (a sequentially consistent store).
    this.#published = (n + 1) >>> 0;
    Atomics.store(control, C.published, this.#published | 0);
    // Seen after the store above, or the reader sees the record before it goes to sleep.
    if (Atomics.load(control, C.sleeping) === 1 || (n & (WAKE_EVERY - 1)) === 0) {
      Atomics.store(control, C.sleeping, 0);
      Atomics.add(control, C.wake, 1);
      Atomics.notify(control, C.wake);
    }
  }
}

/** The log's thread's side. */
export class AccessRingReader {
  readonly #control: Int32Array;
  readonly #fields: Float64Array;
  readonly #bytes: Buffer;
  #consumed = 0;
  /**
   * Bytes done with, ever (mod 2^32): up to the end of the record before the last one read (whose
   * strings its line still points to).
   */
  #freed = 0;
  /** The end of the last record read's bytes, ever (mod 2^32): done with at the next call. */
  #lineEnd = 0;
  /** Where the record being read's next string lies in the bytes. */
  #at = 0;
  /** The line read last, reused: its fields are the next record's once `next()` is called again. */
  readonly #line = new CapturedLine();

  constructor(memory: AccessRingMemory) {
    this.#control = new Int32Array(memory.control);
    this.#fields = new Float64Array(memory.fields);
    this.#bytes = Buffer.from(memory.bytes);
    this.#line.bytes = this.#bytes;
  }

  /** Whether a record waits to be read. */
  get waiting(): boolean {
    return Atomics.load(this.#control, C.published) >>> 0 !== this.#consumed;
  }

  /** Resolves once a record waits (at once if one does), or `poke()` was called. */
  async waitForRecords(): Promise<void> {
    const control = this.#control;
    const wake = Atomics.load(control, C.wake);
    Atomics.store(control, C.sleeping, 1);
    // Checked after saying so: a record published since is seen here, or its writer wakes us.
    if (!this.waiting) await waited(control, wake, Number.POSITIVE_INFINITY);
    Atomics.store(control, C.sleeping, 0);
  }

  /**
   * Resolves after `ms`, or sooner when the ring fills (every WAKE_EVERY records) or `poke()`
   * was called; records published meanwhile do not wake it.
   */
  async pause(ms: number): Promise<void> {
    await waited(this.#control, Atomics.load(this.#control, C.wake), ms);
  }

  /** Ends a wait of this reader now (from its own thread: a request came). */
  poke(): void {
    Atomics.add(this.#control, C.wake, 1);
    Atomics.notify(this.#control, C.wake);
  }

  /**
   * The next record as a line (the same object each time), or undefined when none waits. Its
   * strings but the repeated ones stay in the ring, where the line says they lie, until the next
   * call.
   */
  next(): CapturedLine | undefined {
    const control = this.#control;
    const n = this.#consumed;
    // The line returned last is done with: the writer may have its bytes.
    this.#freed = this.#lineEnd;
    if (Atomics.load(control, C.published) >>> 0 === n) {
      this.#release();
      return undefined;
    }
    const f = this.#fields;
    const slot = (n & (SLOTS - 1)) * FIELDS;
    const startCount = f[slot + F.start]!;
    const start = startCount % BYTES;
    const line = this.#line;
    // The repeated strings, when they changed (in the order written).
    this.#at = start;
    line.service = this.#changed(slot + F.service, 'utf8') ?? line.service;
    line.client = this.#changed(slot + F.client, 'latin1') ?? line.client;
    line.method = this.#changed(slot + F.method, 'latin1') ?? line.method;
    line.tls = this.#changed(slot + F.tls, 'latin1') ?? line.tls;
    // The others stay where they lie: the line says where (length -1: absent).
    line.targetAt = this.#at;
    line.targetLength = this.#skipped(slot + F.target);
    line.requestIdAt = this.#at;
    line.requestIdLength = this.#skipped(slot + F.requestId);
    line.refererAt = this.#at;
    line.refererLength = this.#skipped(slot + F.referer);
    line.agentAt = this.#at;
    line.agentLength = this.#skipped(slot + F.agent);
    line.reasonAt = this.#at;
    line.reasonLength = this.#skipped(slot + F.reason);
    line.endedAt = f[slot + F.endedAt]!;
    line.durationMs = f[slot + F.durationMs]!;
    line.backendMs = f[slot + F.backendMs]!;
    line.status = f[slot + F.status]!;
    line.bytesIn = f[slot + F.bytesIn]!;
    line.bytesOut = f[slot + F.bytesOut]!;
    line.bodyBytesOut = f[slot + F.bodyBytesOut]!;
    line.grpcStatus = f[slot + F.grpcStatus]!;
    line.protocol = PROTOCOLS[f[slot + F.protocol]!]!;
    this.#consumed = (n + 1) >>> 0;
    this.#lineEnd = (startCount + (this.#at - start)) >>> 0;
    if ((this.#consumed & (RELEASE_EVERY - 1)) === 0) this.#release();
    return line;
  }

  /** A repeated string the record changed (it lies at `#at`, which moves past it); undefined: unchanged. */
  #changed(field: number, encoding: 'utf8' | 'latin1'): string | undefined {
    const at = this.#at;
    const length = this.#skipped(field);
    return length < 0 ? undefined : this.#bytes.toString(encoding, at, at + length);
  }

  /** The length of the string of `field` (-1: absent), `#at` moved past it. */
  #skipped(field: number): number {
    const length = this.#fields[field]!;
    if (length > 0) this.#at += length;
    return length;
  }

  /**
   * Tells the writer which records and bytes it may reuse: the records read, and the bytes of all
   * but the last line returned.
   */
  #release(): void {
    // The bytes first: a writer that sees a record consumed may reuse its bytes at once.
    Atomics.store(this.#control, C.freed, this.#freed | 0);
    Atomics.store(this.#control, C.consumed, this.#consumed | 0);
  }
}

/** Resolves once `control[C.wake]` is no longer `seen`, or after `ms`. */
async function waited(control: Int32Array, seen: number, ms: number): Promise<void> {
  const wait = Atomics.waitAsync(control, C.wake, seen, ms);
  if (wait.async) await wait.value;
}
