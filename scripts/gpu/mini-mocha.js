#!/usr/bin/env node
// A minimal stand-in for mocha (describe / it / before / after, this.timeout, this.skip), so the
// GPU session can run test files without carrying mocha. Prints one line per test and a summary;
// exits 1 on any failure.  node scripts/gpu/mini-mocha.js test/graph/parity.test.js ...
'use strict';
const path = require('path');

const root = { name: '', children: [], tests: [], before: [], after: [] };
let current = root;
global.describe = (name, fn) => {
  const s = { name, children: [], tests: [], before: [], after: [], parent: current };
  current.children.push(s);
  const prev = current;
  current = s;
  fn.call({ timeout() {} });
  current = prev;
};
global.it = (name, fn) => current.tests.push({ name, fn });
global.before = (fn) => current.before.push(fn);
global.after = (fn) => current.after.push(fn);

class Skip extends Error {}
const ctx = { timeout() {}, skip() { throw new Skip(); } };
const counts = { passed: 0, failed: 0, skipped: 0 };

async function run(s, depth) {
  if (s.name) console.log(`${'  '.repeat(depth)}${s.name}`);
  try {
    for (const f of s.before) await f.call(ctx);
    for (const t of s.tests) {
      const t0 = Date.now();
      try {
        await t.fn.call(ctx);
        counts.passed++;
        console.log(`${'  '.repeat(depth + 1)}ok   ${t.name} (${Date.now() - t0} ms)`);
      } catch (e) {
        if (e instanceof Skip) {
          counts.skipped++;
          console.log(`${'  '.repeat(depth + 1)}skip ${t.name}`);
        } else {
          counts.failed++;
          console.log(`${'  '.repeat(depth + 1)}FAIL ${t.name}: ${(e && e.stack) || e}`);
        }
      }
    }
    for (const c of s.children) await run(c, depth + 1);
  } finally {
    for (const f of s.after) await f.call(ctx);
  }
}

(async () => {
  for (const f of process.argv.slice(2)) require(path.resolve(f));
  await run(root, -1);
  console.log(`tests: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
  process.exit(counts.failed ? 1 : 0);
})();
