// The golden runner with single-file checkpoints standing in for the model folders: every golden
// README-single-file.md lists for each file (and every other golden of its model) passes with the
// model loaded from the file.
'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { runGolden, formatResult } = require('../../dist/golden/runner');
const { fixture } = require('../helpers/fixtures');

describe('golden runner: single-file checkpoints', function () {
  this.timeout(300000);
  const index = JSON.parse(fs.readFileSync(fixture('single_file', 'index.json'), 'utf8'));
  // every network golden of the model folder a single file stands for (golden/ and sizes/, by their index.json)
  const goldensOf = (model) =>
    ['golden', 'sizes'].flatMap((folder) =>
      Object.entries(JSON.parse(fs.readFileSync(fixture(folder, 'index.json'), 'utf8')))
        .filter(([, g]) => g.model === model)
        .map(([name]) => path.basename(name, '.safetensors')),
    );

  for (const [name, entry] of Object.entries(index.files)) {
    const m = path.basename(entry.model_folder);
    it(`every golden listed for ${name} passes when ${m} is loaded from it, and so does every other golden of ${m}`, async () => {
      const file = fixture(entry.file);
      const listed = entry.goldens.map((g) => path.basename(g, '.safetensors'));
      const s = await runGolden([fixture('golden'), fixture('sizes')], { singleFiles: { [m]: file } });
      const suffix = ` [${path.basename(file)}]`;
      assert.ok(s.results.every((r) => r.name.endsWith(suffix)), "only this model's goldens run, each marked with the file");
      const names = s.results.map((r) => r.name.slice(0, -suffix.length));
      for (const g of listed) assert.ok(names.includes(g), `${g} did not run`);
      assert.deepStrictEqual(names.slice().sort(), goldensOf(m).sort());
      assert.deepStrictEqual(s.results.filter((r) => r.status !== 'PASS').map(formatResult), []);
      assert.ok(s.results.every((r) => r.value <= r.tol));
    });
  }
});
