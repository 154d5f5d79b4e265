// The byte scan of an HTTP/1.x head, compiled to WebAssembly (AssemblyScript:
// `npm run build:wasm` writes src/https/head-scan-wasm.ts). The head's text is
// written at TEXT; a scan checks the start line and every header line byte by
// byte, as strictly as src/https/head-parser.ts asks, and writes positions
// (indexes in the text) at OUT. It decides nothing about what a header says:
// the parser reads the kinds and values the proxy acts on. Why WebAssembly: the
// same loops in JavaScript cost 30-50 instructions per byte (every typed-array
// read checks its map and bounds); here about 4 (docs/benchmarks.md).
//
// Memory: the class of each byte (CLASSES), the results (OUT: i32s), and from
// `text()` on, the head (JavaScript grows the memory for a longer one).

/** Byte classes (bits): a token character, the underscore, a field-value byte, a request-target byte. */
const C_TOKEN: u8 = 1;
const C_UNDERSCORE: u8 = 2;
const C_FIELD: u8 = 4;
const C_TARGET: u8 = 8;

/** The classes of the 256 byte values. */
const CLASSES: usize = memory.data(256);
/** Most header lines in one head; more is refused (too-many-headers: 431). */
const MAX_FIELDS: i32 = 200;
/** Results: the start line and the count (8 i32s), then 6 per header line. */
const LINE_BYTES: usize = 24;
const OUT: usize = memory.data(32 + <i32>MAX_FIELDS * <i32>LINE_BYTES, 16);
const R_START_LINE_END: usize = 0;
const R_FIRST: usize = 4;
const R_SECOND: usize = 8;
const R_MINOR: usize = 12;
/** How many header lines were read whole before an error (or all of them). */
const R_LINES: usize = 16;
const LINES: usize = OUT + 32;
/** Where the head's text begins: past everything else in memory. */
const TEXT: usize = (__heap_base + 15) & ~15;

/**
 * The header names the proxy acts on (header-kinds.ts registers them through addName), in an
 * open-addressed table of 256 slots by length and first and last letter: per slot the name's
 * place in NAMES (u16), its length (u8, 0: empty) and its kind (u8).
 */
const NAME_SLOTS: usize = memory.data(256 * 4, 4);
const NAMES: usize = memory.data(1024);
let namesUsed: usize = 0;
/** The kind of a name with an underscore (header-kinds.ts K_UNDERSCORE). */
let underscoreKind: i32 = 0;

/** Where the results begin. */
export function results(): usize {
  return OUT;
}

/** Where the head's text is to be written. */
export function text(): usize {
  return TEXT;
}

/** Errors, as negative results; head-scan.ts names them. */
const E_TOO_MANY_HEADERS: i32 = -1;
const E_OBS_FOLD: i32 = -2;
const E_BAD_HEADER_NAME: i32 = -3;
const E_BAD_HEADER_VALUE: i32 = -4;
const E_BAD_REQUEST_LINE: i32 = -5;
const E_BAD_METHOD: i32 = -6;
const E_BAD_TARGET: i32 = -7;
const E_BAD_VERSION: i32 = -8;
const E_BAD_STATUS_LINE: i32 = -9;

@inline function at(i: usize): u32 {
  return <u32>load<u8>(TEXT + i);
}

@inline function cls(c: u32): u32 {
  return <u32>load<u8>(CLASSES + <usize>c);
}

@inline function result(slot: usize, value: usize): void {
  store<i32>(OUT + slot, <i32>value);
}

@inline function slotOf(length: usize, first: u32, last: u32): usize {
  return ((length * 31) ^ (<usize>(first | 0x20) * 7) ^ <usize>(last | 0x20)) & 255;
}

/**
 * Registers a name the proxy acts on: its `length` lower-case bytes written at TEXT, and its
 * kind (1-255). 0, or -1 when the table is full.
 */
export function addName(length: usize, kind: i32): i32 {
  if (length == 0 || length > 255 || namesUsed + length > 1024) return -1;
  let slot = slotOf(length, at(0), at(length - 1));
  for (let probes = 0; load<u8>(NAME_SLOTS + slot * 4 + 2) != 0; probes++) {
    if (probes == 255) return -1;
    slot = (slot + 1) & 255;
  }
  memory.copy(NAMES + namesUsed, TEXT, length);
  store<u16>(NAME_SLOTS + slot * 4, <u16>namesUsed);
  store<u8>(NAME_SLOTS + slot * 4 + 2, <u8>length);
  store<u8>(NAME_SLOTS + slot * 4 + 3, <u8>kind);
  namesUsed += length;
  return 0;
}

/**
 * The kind of the (token-checked) name text[from, to): a registered name's, ASCII letters
 * folded, or 0. Tokens hold no character that | 0x20 could confuse with a lower-case letter,
 * a digit or '-'.
 */
function kindOf(from: usize, to: usize): i32 {
  const length = to - from;
  let slot = slotOf(length, at(from), at(to - 1));
  // addName leaves a slot empty: the probe ends.
  while (true) {
    const entry = load<u32>(NAME_SLOTS + slot * 4);
    const entryLength = <usize>((entry >> 16) & 0xff);
    if (entryLength == 0) return 0;
    if (entryLength == length) {
      const name = NAMES + <usize>(entry & 0xffff);
      let i: usize = 0;
      while (i < length && (at(from + i) | 0x20) == <u32>load<u8>(name + i)) i++;
      if (i == length) return <i32>(entry >> 24);
    }
    slot = (slot + 1) & 255;
  }
  return 0;
}

/** Fills the byte classes; called once, before any scan. `underscore`: the kind of a name with an underscore. */
export function init(underscore: i32): void {
  underscoreKind = underscore;
  const tokens = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  for (let i = 0; i < tokens.length; i++) {
    mark(<usize>tokens.charCodeAt(i), C_TOKEN);
  }
  mark(0x5f, C_UNDERSCORE);
  mark(0x09, C_FIELD);
  for (let c: usize = 0x20; c <= 0xff; c++) if (c != 0x7f) mark(c, C_FIELD);
  for (let c: usize = 0x21; c <= 0x7e; c++) mark(c, C_TARGET);
}

function mark(c: usize, bits: u8): void {
  store<u8>(CLASSES + c, load<u8>(CLASSES + c) | bits);
}

/** True when the text at `i` is "HTTP/1.". */
@inline function isHttp1(i: usize): bool {
  return (
    at(i) == 0x48 && at(i + 1) == 0x54 && at(i + 2) == 0x54 && at(i + 3) == 0x50 &&
    at(i + 4) == 0x2f && at(i + 5) == 0x31 && at(i + 6) == 0x2e
  );
}

/**
 * The header lines of text[pos, to): per line its start, colon, trimmed value, end and kind. The count of lines, or an error (R_LINES: the lines read whole).
 */
function fields(pos: usize, to: usize): i32 {
  let n: i32 = 0;
  let out = LINES;
  result(R_LINES, 0);
  while (pos < to) {
    if (n == MAX_FIELDS) return E_TOO_MANY_HEADERS;
    const first = at(pos);
    if (first == 0x20 || first == 0x09) return E_OBS_FOLD;
    // The name: token characters up to the colon.
    let colon = pos;
    let classes: u32 = 0;
    let c: u32 = 0;
    while (colon < to) {
      c = at(colon);
      const k = cls(c);
      if ((k & C_TOKEN) == 0) break;
      classes |= k;
      colon++;
    }
    if (colon == pos || colon == to || c != 0x3a) return E_BAD_HEADER_NAME;
    // The value: leading and trailing blanks trimmed; every byte a field byte up to the CRLF.
    let i = colon + 1;
    while (i < to) {
      c = at(i);
      if (c != 0x20 && c != 0x09) break;
      i++;
    }
    const vs = i;
    while (i < to) {
      c = at(i);
      if ((cls(c) & C_FIELD) == 0) break;
      i++;
    }
    const eol = i;
    let ve = eol;
    while (ve > vs) {
      c = at(ve - 1);
      if (c != 0x20 && c != 0x09) break;
      ve--;
    }
    if (i < to && (at(i) != 0x0d || i + 1 == to || at(i + 1) != 0x0a)) return E_BAD_HEADER_VALUE;
    store<i32>(out, <i32>pos);
    store<i32>(out, <i32>colon, 4);
    store<i32>(out, <i32>vs, 8);
    store<i32>(out, <i32>ve, 12);
    store<i32>(out, <i32>eol, 16);
    store<i32>(out, (classes & C_UNDERSCORE) != 0 ? underscoreKind : kindOf(pos, colon), 20);
    out += LINE_BYTES;
    n++;
    result(R_LINES, <usize>n);
    pos = eol + 2;
  }
  return n;
}

/**
 * A request head of `to` bytes at TEXT (without the CRLF of its last line and the blank line):
 * the request line (R_START_LINE_END, R_FIRST and R_SECOND: its two spaces, R_MINOR), then the
 * header lines. Their count, or an error.
 */
export function scanRequest(to: usize): i32 {
  let sp1: isize = -1;
  let sp2: isize = -1;
  let eol: usize = 0;
  result(R_LINES, 0);
  while (eol < to) {
    const c = at(eol);
    if (c == 0x0d && eol + 1 < to && at(eol + 1) == 0x0a) break;
    if (c == 0x20) {
      if (sp1 == -1) sp1 = <isize>eol;
      else if (sp2 == -1) sp2 = <isize>eol;
    }
    eol++;
  }
  result(R_START_LINE_END, eol);
  if (sp1 <= 0) return E_BAD_REQUEST_LINE;
  if (sp2 == -1 || sp2 == sp1 + 1) return E_BAD_REQUEST_LINE;
  const s1 = <usize>sp1;
  const s2 = <usize>sp2;
  for (let i: usize = 0; i < s1; i++) if ((cls(at(i)) & C_TOKEN) == 0) return E_BAD_METHOD;
  for (let i = s1 + 1; i < s2; i++) if ((cls(at(i)) & C_TARGET) == 0) return E_BAD_TARGET;
  if (eol - s2 != 9 || !isHttp1(s2 + 1)) return E_BAD_VERSION;
  const minor = at(eol - 1);
  if (minor != 0x30 && minor != 0x31) return E_BAD_VERSION;
  result(R_FIRST, s1);
  result(R_SECOND, s2);
  result(R_MINOR, <usize>(minor - 0x30));
  return fields(eol + 2, to);
}

/**
 * A response head of `to` bytes at TEXT: the status line ("HTTP/1.1 200 OK", the reason
 * optional: R_START_LINE_END, R_FIRST the status, R_MINOR), then the header lines. Their
 * count, or an error.
 */
export function scanResponse(to: usize): i32 {
  let eol: usize = 0;
  result(R_LINES, 0);
  while (eol < to && !(at(eol) == 0x0d && eol + 1 < to && at(eol + 1) == 0x0a)) eol++;
  result(R_START_LINE_END, eol);
  if (eol < 12 || !isHttp1(0) || at(8) != 0x20) return E_BAD_STATUS_LINE;
  const minor = at(7);
  if (minor != 0x30 && minor != 0x31) return E_BAD_STATUS_LINE;
  let status: u32 = 0;
  for (let i: usize = 9; i < 12; i++) {
    const c = at(i);
    if (c < 0x30 || c > 0x39) return E_BAD_STATUS_LINE;
    status = status * 10 + (c - 0x30);
  }
  if (status < 100) return E_BAD_STATUS_LINE;
  if (eol > 12) {
    if (at(12) != 0x20) return E_BAD_STATUS_LINE;
    for (let i: usize = 13; i < eol; i++) if ((cls(at(i)) & C_FIELD) == 0) return E_BAD_STATUS_LINE;
  }
  result(R_FIRST, <usize>status);
  result(R_MINOR, <usize>(minor - 0x30));
  return fields(eol + 2, to);
}
