// Loaded into every test process (package.json "tap" "node-arg"). tap's
// processinfo, its bookkeeping for coverage and --changed, follows each child
// process a test spawns by putting itself into the child's NODE_OPTIONS (through
// process-on-spawn, whatever env the spawn passes). That costs every spawned
// harbor-sidecar, harbor-node and harbor CLI about 0.3 s of CPU at start-up, and
// a run spawns hundreds. Coverage is off ("disable-coverage"), so the children
// are left alone: the hook is removed and NODE_OPTIONS no longer names it. If
// tap stops working this way, this does nothing and the suite is only slower.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
try {
  require('process-on-spawn').removeAllListeners();
} catch {
  // Not installed this way: nothing to remove.
}
const kept = (process.env.NODE_OPTIONS ?? '')
  .split(/\s+/)
  .filter((option) => option !== '' && !option.includes('@tapjs/processinfo'));
if (kept.length > 0) process.env.NODE_OPTIONS = kept.join(' ');
else delete process.env.NODE_OPTIONS;
