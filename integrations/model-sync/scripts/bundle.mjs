// The browser bundle (an IIFE exposing `ChannelModelSync`, TF.js not included): used by the
// browser tests, and its minified size is the figure in docs/benchmarks.md.
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';
import { readFileSync, writeFileSync } from 'node:fs';

const outfile = 'dist/model-sync.min.js';
await build({
  entryPoints: ['dist/index.js'], bundle: true, minify: true, format: 'iife',
  globalName: 'ChannelModelSync', target: 'es2020', outfile, logLevel: 'warning',
});
const bytes = readFileSync(outfile);
const size = { minified: bytes.length, gzipped: gzipSync(bytes).length };
writeFileSync('dist/size.json', JSON.stringify(size) + '\n');
console.log(`${outfile}: ${size.minified} bytes minified, ${size.gzipped} gzipped`);
