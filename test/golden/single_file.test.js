// The golden runner with single-file checkpoints standing in for the model folders: every golden
// README-single-file.md lists for each file passes with the model loaded from the file.
'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { runGolden, formatResult } = require('../../dist/golden/runner');
const { fixture } = require('../helpers/fixtures');

describe('golden runner: single-file checkpoints', function () {
  this.timeout(300000);
  const index = () => JSON.parse(fs.readFileSync(fixture('single_file', 'index.json'), 'utf8'));

  for (const m of ['tiny-sd15', 'tiny-sd21', 'tiny-sdxl']) {
    it(`every golden listed for ${m}.safetensors passes when the model is loaded from it`, async () => {
      const file = fixture('single_file', `${m}.safetensors`);
      const listed = index().files[`${m}.safetensors`].goldens.map((g) => path.basename(g, '.safetensors'));
      const s = await runGolden([fixture('golden')], { singleFiles: { [m]: file } });
      const suffix = ` [${m}.safetensors]`;
      assert.ok(s.results.every((r) => r.name.endsWith(suffix)), 'only this model\'s goldens run, each marked with the file');
      const names = s.results.map((r) => r.name.slice(0, -suffix.length));
      for (const g of listed) assert.ok(names.includes(g), `${g} did not run`);
      // SDXL: the lora_sdxl goldens apply too (README-lora-sdxl.md); nothing else runs
      const extra = names.filter((n) => !listed.includes(n));
      assert.deepStrictEqual(extra, m === 'tiny-sdxl' ? names.filter((n) => n.startsWith('lora_sdxl_')) : []);
      assert.deepStrictEqual(s.results.filter((r) => r.status !== 'PASS').map(formatResult), []);
      assert.ok(s.results.every((r) => r.value <= r.tol));
    });
  }
});
