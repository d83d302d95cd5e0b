// What the CLIs accept beyond util.parseArgs: negative values after a string option, and a bare
// flag for an option whose value may be omitted.
'use strict';
const assert = require('assert');
const { normalizeArgs } = require('../dist/cli_args');

describe('CLI arguments', () => {
  const spec = { seed: { type: 'string' }, cfg: { type: 'string', short: 'c' }, taesd: { type: 'string', optional: true }, quiet: { type: 'boolean', short: 'q' }, prompt: { type: 'string', short: 'p' } };

  it('a string option takes a following negative number as its value', () => {
    assert.deepStrictEqual(normalizeArgs(['--seed', '-1', '-c', '-2.5', '--cfg', '-.5'], spec), ['--seed=-1', '--cfg=-2.5', '--cfg=-.5']);
    // not a number: left to parseArgs (which reports it)
    assert.deepStrictEqual(normalizeArgs(['--seed', '-q'], spec), ['--seed', '-q']);
    // a prompt that starts with a dash and a digit is still the prompt's value
    assert.deepStrictEqual(normalizeArgs(['-p', '-3 cats'], spec), ['--prompt=-3 cats']);
  });

  it('an optional-value option alone, or before another option, means true', () => {
    assert.deepStrictEqual(normalizeArgs(['--taesd'], spec), ['--taesd=true']);
    assert.deepStrictEqual(normalizeArgs(['--taesd', '-q'], spec), ['--taesd=true', '-q']);
    assert.deepStrictEqual(normalizeArgs(['--taesd', 'madebyollin/taesdxl'], spec), ['--taesd', 'madebyollin/taesdxl']);
    assert.deepStrictEqual(normalizeArgs(['--taesd=dir', '--', '--seed', '-1'], spec), ['--taesd=dir', '--', '--seed', '-1']);
  });
});
