// Splitting PEM text into its blocks. node:crypto parses one certificate per
// call, so a .crt holding a chain is split here first, keeping the file's order.

export interface PemBlock {
  /** The label between BEGIN and END, e.g. `CERTIFICATE`, `EC PRIVATE KEY`. */
  readonly label: string;
  /** The whole block, BEGIN and END lines included, ending with a newline. */
  readonly pem: string;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)\r?\n?-----END \1-----/g;

/** Every PEM block in `text`, in order; text outside blocks (comments, `Bag Attributes`) is ignored. */
export function splitPem(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const match of text.matchAll(BLOCK)) {
    const label = match[1] ?? '';
    const body = (match[2] ?? '').replace(/\r/g, '').trim();
    blocks.push({ label, pem: `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n` });
  }
  return blocks;
}

/** True when a PEM key needs a passphrase: PKCS#8 `ENCRYPTED PRIVATE KEY` or legacy `Proc-Type: 4,ENCRYPTED`. */
export function isEncryptedKeyPem(text: string): boolean {
  return text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /Proc-Type:\s*4,ENCRYPTED/.test(text);
}
