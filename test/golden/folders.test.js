// The one list of fixture folders (lib/golden/folders.ts) against the fixture tree and its READMEs:
// every top-level folder of ../shared/fixtures is known to the runner, and every folder a README
// names as `name/` is a known fixture folder or a folder inside one.
'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { FIXTURE_FOLDERS, FIXTURE_FOLDER_NAMES } = require('../../dist/golden/folders');
const { fixturesDir } = require('../helpers/fixtures');

describe('golden runner: the fixture folders', () => {
  const topLevel = fs.readdirSync(fixturesDir).filter((n) => !n.startsWith('.') && fs.statSync(path.join(fixturesDir, n)).isDirectory());
  const readmes = fs.readdirSync(fixturesDir).filter((n) => /^README.*\.md$/.test(n));
  // folders inside the fixture folders (models/<model>/unet/, schedulers/cases/, ...): READMEs name them too
  const inner = new Set();
  const walk = (d, depth) => {
    for (const n of fs.readdirSync(d)) {
      const p = path.join(d, n);
      if (!fs.statSync(p).isDirectory()) continue;
      if (depth > 0) inner.add(n);
      walk(p, depth + 1);
    }
  };
  walk(fixturesDir, 0);

  it('every top-level folder of the fixtures is in the list', () => {
    assert.ok(topLevel.length > 0);
    assert.deepStrictEqual(topLevel.filter((n) => !FIXTURE_FOLDER_NAMES.includes(n)), []);
  });

  it('every folder the READMEs name is in the list (or a folder inside one)', () => {
    assert.ok(readmes.length > 0);
    const named = new Set();
    for (const f of readmes) {
      const text = fs.readFileSync(path.join(fixturesDir, f), 'utf8');
      for (const m of text.matchAll(/`([a-z][a-z0-9_-]*)\/`/g)) named.add(m[1]);
    }
    assert.ok(named.size > 0, 'the READMEs name folders as `name/`');
    assert.deepStrictEqual([...named].filter((n) => !FIXTURE_FOLDER_NAMES.includes(n) && !inner.has(n)), []);
  });

  it('every folder in the list that holds cases exists in the fixtures', () => {
    const missing = FIXTURE_FOLDERS.filter((f) => !topLevel.includes(f.name)).map((f) => f.name);
    assert.deepStrictEqual(missing, []);
  });
});
