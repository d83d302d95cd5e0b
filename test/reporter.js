// mocha's spec output, then one plain summary line that CI reads: "tests: N passed, M failed".
'use strict';
const Mocha = require('mocha');

const { Spec } = Mocha.reporters;
const { EVENT_RUN_END } = Mocha.Runner.constants;

class OnestepReporter extends Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(EVENT_RUN_END, () => {
      const s = runner.stats;
      if (s.pending) console.log(`tests: ${s.pending} skipped (marked pending; see the lines above)`);
      console.log(`tests: ${s.passes} passed, ${s.failures} failed`);
    });
  }
}

module.exports = OnestepReporter;
