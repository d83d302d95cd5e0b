// Command-line arguments before util.parseArgs: what parseArgs refuses that users type.
//   --seed -1, --cfg -2 ...   a string option followed by a negative number takes it as its value
//                             (parseArgs calls it "ambiguous" and wants --seed=-1)
//   --taesd                   an option whose value may be omitted (optional: true) takes 'true'
//                             when no value follows (the next token is another option, or none)

export interface ArgSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** string options only: the value may be omitted (it then reads 'true') */
  optional?: boolean;
}

const NEGATIVE = /^-(\d|\.\d)/;

/** argv rewritten so parseArgs reads negative values and bare optional-value flags as meant. */
export function normalizeArgs(argv: readonly string[], spec: Record<string, ArgSpec>): string[] {
  const byShort = new Map(Object.entries(spec).filter(([, s]) => s.short).map(([name, s]) => [`-${s.short}`, name]));
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const name = a.startsWith('--') && !a.includes('=') ? a.slice(2) : byShort.get(a);
    const s = name === undefined ? undefined : spec[name];
    if (!s || s.type !== 'string') {
      out.push(a);
      continue;
    }
    const next = argv[i + 1];
    if (next !== undefined && NEGATIVE.test(next)) {
      out.push(`--${name}=${next}`);
      i++;
    } else if (s.optional && (next === undefined || next.startsWith('-'))) {
      out.push(`--${name}=true`);
    } else {
      out.push(a);
    }
  }
  return out;
}

/** The parseArgs options of a spec (without the fields parseArgs does not know), types kept. */
export function parseArgsOptions<T extends Record<string, ArgSpec>>(spec: T): { [K in keyof T]: Omit<T[K], 'optional'> } {
  return Object.fromEntries(Object.entries(spec).map(([k, { optional: _optional, ...rest }]) => [k, rest])) as { [K in keyof T]: Omit<T[K], 'optional'> };
}
