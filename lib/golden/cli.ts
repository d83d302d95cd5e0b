#!/usr/bin/env node
// npm run golden -- PATH... [--device cpu|cuda] [--precision fp32|bf16] [--filter REGEX] [--single-file FILE[=MODEL]]... [--quiet]
import * as path from 'path';
import { PRECISIONS, type Precision } from '../graph';
import { formatResult, runGolden } from './runner';

export async function main(argv: string[]): Promise<number> {
  const paths: string[] = [];
  let device: 'cpu' | 'cuda' = 'cpu';
  let precision: Precision = 'fp32';
  let filter: RegExp | undefined;
  let quiet = false;
  let singleFiles: Record<string, string> | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--device') {
      const d = argv[++i];
      if (d !== 'cpu' && d !== 'cuda') {
        console.error(`--device must be cpu or cuda, got ${d}`);
        return 2;
      }
      device = d;
    } else if (a === '--precision') {
      const p = argv[++i];
      if (!(PRECISIONS as readonly string[]).includes(p)) {
        console.error(`--precision must be ${PRECISIONS.join(' or ')}, got ${p}`);
        return 2;
      }
      precision = p as Precision;
    } else if (a === '--filter') {
      filter = new RegExp(argv[++i] ?? '');
    } else if (a === '--single-file') {
      // FILE stands in for models/MODEL (default: the file's name without .safetensors)
      const v = argv[++i] ?? '';
      const eq = v.lastIndexOf('=');
      const file = eq > 0 ? v.slice(0, eq) : v;
      const model = eq > 0 ? v.slice(eq + 1) : path.basename(v, '.safetensors');
      if (!file || !model) {
        console.error('--single-file needs FILE[=MODEL]');
        return 2;
      }
      singleFiles = { ...singleFiles, [model]: file };
    } else if (a === '--quiet') {
      quiet = true;
    } else if (a === '-h' || a === '--help') {
      console.log('usage: npm run golden -- PATH... [--device cpu|cuda] [--precision fp32|bf16] [--filter REGEX] [--single-file FILE[=MODEL]]... [--quiet]');
      return 0;
    } else {
      paths.push(a);
    }
  }
  if (paths.length === 0) {
    console.error('usage: npm run golden -- PATH... (fixture files or folders, e.g. ../shared/fixtures)');
    return 2;
  }
  const s = await runGolden(paths, {
    device,
    precision,
    filter,
    singleFiles,
    onResult: (r) => {
      if (!quiet || r.status === 'FAIL') console.log(formatResult(r));
    },
  });
  if (s.todo) console.log(`golden: ${s.todo} cases are TODO (kinds not implemented yet)`);
  console.log(`golden: ${s.passed} passed, ${s.failed} failed`);
  return s.failed > 0 ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
