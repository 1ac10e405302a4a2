#!/usr/bin/env node
// CLI entry point: runs the compiled proxy (npm run build produces dist/).
import { main } from '../dist/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`pg-tenant-proxy: ${e.message}\n`);
    process.exit(1);
  },
);
