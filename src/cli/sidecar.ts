#!/usr/bin/env node
// The harbor-sidecar bin. Long-running commands resolve when they are done;
// the exit waits for stdout to flush so a piped `env` is never cut short.
import { main } from './program.js';

const status = await main(process.argv.slice(2));
process.stdout.write('', () => process.exit(status));
