// New request ids: random (version 4) UUIDs, made a batch at a time. Node's
// randomUUID() builds each id as a chain of about twenty joined pieces, which
// the request head it goes into must then walk and copy: about 3,500
// instructions per request under callgrind (bench/https/instructions.mjs).
// Here one batch of random bytes becomes one string of ids, and each id is a
// slice of it (V8 makes a 36-character slice a view, not a copy).
import { randomFillSync } from 'node:crypto';

const BATCH = 128;
const ID_LENGTH = 36;
const HEX = [...'0123456789abcdef'].map((c) => c.charCodeAt(0));
const DASH = 0x2d;
const random = Buffer.alloc(16 * BATCH);
const text = Buffer.alloc(ID_LENGTH * BATCH);
let ids = '';
let next = BATCH;

/** A new random UUID (RFC 9562 version 4), lower-case. */
export function newRequestUuid(): string {
  if (next === BATCH) refill();
  const from = next * ID_LENGTH;
  next++;
  return ids.slice(from, from + ID_LENGTH);
}

function refill(): void {
  randomFillSync(random);
  let o = 0;
  for (let n = 0; n < BATCH; n++) {
    const r = n * 16;
    // Version 4 in the high nibble of byte 6; the variant (binary 10) in the top bits of byte 8.
    random[r + 6] = ((random[r + 6] as number) & 0x0f) | 0x40;
    random[r + 8] = ((random[r + 8] as number) & 0x3f) | 0x80;
    for (let i = 0; i < 16; i++) {
      if (i === 4 || i === 6 || i === 8 || i === 10) text[o++] = DASH;
      const b = random[r + i] as number;
      text[o++] = HEX[b >> 4] as number;
      text[o++] = HEX[b & 15] as number;
    }
  }
  ids = text.toString('latin1');
  next = 0;
}
