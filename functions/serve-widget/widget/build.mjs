// Bundles the widget (src/) into dist/: loader.js (the script tag's target, renders the
// launcher at once) and app.js (the panel, fetched on first open or on hover). Writes
// dist/manifest.json with the sources' hash, which serve-widget's build.rs compares with the
// sources: a missing or stale bundle fails the cargo build. Fails over the size budget.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

const here = new URL('.', import.meta.url).pathname;
/** Gzipped budgets (bytes): the loader on every page view, everything on first open. */
export const BUDGET = { loader: 4 * 1024, total: 16 * 1024 };

/** The same hash as build.rs: each file's relative path, NUL, bytes, NUL; sorted by path. */
export function sourceHash() {
  const files = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.push(relative(here, path).split('\\').join('/'));
    }
  };
  walk(join(here, 'src'));
  files.push('build.mjs', 'package-lock.json');
  files.sort();
  const hash = createHash('sha256');
  for (const file of files) {
    hash.update(file);
    hash.update('\0');
    hash.update(readFileSync(join(here, file)));
    hash.update('\0');
  }
  return hash.digest('hex');
}

const dist = join(here, 'dist');
mkdirSync(dist, { recursive: true });
const common = {
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020', 'chrome90', 'firefox90', 'safari14'],
  legalComments: 'none',
  charset: 'utf8',
  logLevel: 'warning',
};
await build({ ...common, entryPoints: [join(here, 'src/loader.ts')], outfile: join(dist, 'loader.js') });
await build({ ...common, entryPoints: [join(here, 'src/app.ts')], outfile: join(dist, 'app.js') });

const gz = (file) => gzipSync(readFileSync(join(dist, file)), { level: 9 }).length;
const sizes = { loader: gz('loader.js'), app: gz('app.js') };
sizes.total = sizes.loader + sizes.app;
const manifest = { sourceHash: sourceHash(), gzipBytes: sizes, budget: BUDGET };
writeFileSync(join(dist, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
console.log(`widget: loader ${sizes.loader} B gz (budget ${BUDGET.loader}), total ${sizes.total} B gz (budget ${BUDGET.total})`);
const over = [];
if (sizes.loader > BUDGET.loader) over.push(`loader ${sizes.loader} > ${BUDGET.loader}`);
if (sizes.total > BUDGET.total) over.push(`total ${sizes.total} > ${BUDGET.total}`);
if (over.length) {
  // A bundle over budget must not be embedded: drop the manifest so cargo fails too.
  writeFileSync(join(dist, 'manifest.json'), '{"overBudget":true}\n');
  console.error(`widget: OVER BUDGET (gzipped): ${over.join(', ')}`);
  process.exit(1);
}
