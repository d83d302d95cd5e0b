// Where the shared fixtures live (../shared/fixtures beside the project, or ONESTEP_FIXTURES).
// A missing folder is a clear test failure, never a skip.
'use strict';
const fs = require('fs');
const path = require('path');

const fixturesDir = path.resolve(process.env.ONESTEP_FIXTURES || path.join(__dirname, '..', '..', '..', 'shared', 'fixtures'));

function fixture(...parts) {
  const p = path.join(fixturesDir, ...parts);
  if (!fs.existsSync(p)) {
    throw new Error(`fixture missing: ${p} (tests need ../shared/fixtures beside the project, or ONESTEP_FIXTURES)`);
  }
  return p;
}

module.exports = { fixturesDir, fixture };
