// Certificates: the certificate folder and which pair serves a service
// (select), reading and checking pairs (pair, inspect, validate), making
// self-signed pairs (generate), a pair that reloads itself safely
// (reloadable) and the file watching that triggers reloads (watch).
// The TLS servers consume a ReloadablePair; the CLI's check and
// `certs generate` consume validatePair and generateSelfSigned.
export { writeFileAtomic } from './atomic.js';
export {
  buildSelfSignedCertificate,
  checkGenerateOptions,
  GENERATE_DEFAULTS,
  type GeneratedKeyType,
  type GeneratedPair,
  type GenerateOptions,
  generateSelfSigned,
  MAX_DAYS,
} from './generate.js';
export {
  type CertSummary,
  canonicalIp,
  chainBreak,
  describeKey,
  type Inspection,
  inspectChain,
  isIssuedBy,
  isSelfSigned,
  type KeyInfo,
  keyMatches,
  parseSubjectAltNames,
  type SubjectAltNames,
  summarize,
} from './inspect.js';
export {
  displayPath,
  type PairFiles,
  type PemMaterial,
  parseCertificates,
  parsePrivateKey,
  type ReadOptions,
  type ReadResult,
  readPair,
} from './pair.js';
export { describePair, type PairValue } from './pair-value.js';
export { isEncryptedKeyPem, type PemBlock, splitPem } from './pem.js';
export {
  type ChangeListener,
  type PairState,
  ReloadablePair,
  type ReloadablePairOptions,
  type ReloadOutcome,
  type ReloadStatus,
} from './reloadable.js';
export {
  type CaReason,
  type CertsDir,
  type CertsDirOptions,
  type CertsDirReason,
  candidateFiles,
  FALLBACK_NAME,
  resolveCertsDir,
  type Selection,
  type SelectionReason,
  type SelectOptions,
  selectPair,
} from './select.js';
export {
  certificateCovers,
  type LoadedPair,
  loadPair,
  nameWarnings,
  strengthWarnings,
  type ValidateOptions,
  type Validation,
  validatePair,
  validityProblems,
} from './validate.js';
export { CertWatcher, type CertWatcherOptions, type WatchPairOptions, watchPair } from './watch.js';
