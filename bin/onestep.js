#!/usr/bin/env node
'use strict';
require('../dist/cli.js')
  .main(process.argv.slice(2))
  .then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      console.error(`onestep: ${e && e.message ? e.message : e}`);
      process.exitCode = 1;
    },
  );
