// Command-line options of the benchmark scripts: parsed strictly (an unknown option or a bad value
// exits 2 with the usage text), --help prints it and exits 0, integer options checked by range.
'use strict';
const { parseArgs } = require('util');

function scriptOptions(prefix, usageText, options) {
  const usage = (msg) => {
    console.error(`${prefix}: ${msg}\n\n${usageText}`);
    process.exit(2);
  };
  let parsed;
  try {
    parsed = parseArgs({ args: process.argv.slice(2), options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values;
  } catch (e) {
    usage(e.message);
  }
  if (parsed.help) {
    console.log(usageText);
    process.exit(0);
  }
  const intOpt = (name, dflt, min, step = 1) => {
    const v = parsed[name];
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n % step) usage(`--${name} must be an integer >= ${min}${step > 1 ? ` and a multiple of ${step}` : ''}, got '${v}'`);
    return n;
  };
  return { parsed, usage, intOpt };
}

module.exports = { scriptOptions };
