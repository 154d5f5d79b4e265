#!/usr/bin/env node
// The harbor bin. The exit waits for stdout to flush so a piped
// `manifest apply` is never cut short.
import { main } from './harbor-program.js';

const status = await main(process.argv.slice(2));
process.stdout.write('', () => process.exit(status));
