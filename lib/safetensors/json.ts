// A strict JSON parser for safetensors headers. Unlike JSON.parse it reports duplicate keys,
// bounds nesting depth (a hostile header cannot exhaust the stack), refuses lone surrogates,
// keeps integers exact (bigint beyond 2^53) and marks non-integer literals (JsonFloat) so that
// "1.0" or "1e3" are not taken as a dimension. Objects are Maps, so no key can touch a prototype.

export class JsonFloat {
  constructor(readonly value: number) {}
}

export type JsonValue = null | boolean | number | bigint | JsonFloat | string | JsonValue[] | JsonObject;
export type JsonObject = Map<string, JsonValue>;

export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(`${message} at character ${position}`);
  }
}

export class JsonDuplicateKeyError extends Error {
  constructor(
    readonly key: string,
    readonly path: string,
  ) {
    super(`duplicate key '${key}'${path ? ` in ${path}` : ''}`);
  }
}

const MAX_DEPTH = 64;

export function parseStrictJson(text: string): JsonValue {
  let i = 0;
  const n = text.length;

  const fail = (msg: string): never => {
    throw new JsonSyntaxError(msg, i);
  };
  const skipWs = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };

  const parseString = (): string => {
    // at opening quote
    i++;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= n) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in string');
      if (c === 0x5c) {
        out += text.slice(start, i);
        i++;
        if (i >= n) fail('unterminated escape');
        const e = text[i];
        switch (e) {
          case '"': out += '"'; i++; break;
          case '\\': out += '\\'; i++; break;
          case '/': out += '/'; i++; break;
          case 'b': out += '\b'; i++; break;
          case 'f': out += '\f'; i++; break;
          case 'n': out += '\n'; i++; break;
          case 'r': out += '\r'; i++; break;
          case 't': out += '\t'; i++; break;
          case 'u': {
            i++;
            const cu = readHex4();
            if (cu >= 0xd800 && cu <= 0xdbff) {
              if (text[i] !== '\\' || text[i + 1] !== 'u') fail('lone surrogate in \\u escape');
              i += 2;
              const lo = readHex4();
              if (lo < 0xdc00 || lo > 0xdfff) fail('lone surrogate in \\u escape');
              out += String.fromCharCode(cu, lo);
            } else if (cu >= 0xdc00 && cu <= 0xdfff) {
              fail('lone surrogate in \\u escape');
            } else {
              out += String.fromCharCode(cu);
            }
            break;
          }
          default:
            fail(`invalid escape '\\${e}'`);
        }
        start = i;
        continue;
      }
      i++;
    }
  };

  const readHex4 = (): number => {
    // at the first of four hex digits
    if (i + 4 > n) fail('truncated \\u escape');
    const h = text.slice(i, i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('invalid \\u escape');
    i += 4;
    return parseInt(h, 16);
  };

  const parseNumber = (): number | bigint | JsonFloat => {
    const start = i;
    if (text[i] === '-') i++;
    if (text[i] === '0') {
      i++;
    } else if (text[i] >= '1' && text[i] <= '9') {
      while (text[i] >= '0' && text[i] <= '9') i++;
    } else {
      fail('invalid number');
    }
    let integer = true;
    if (text[i] === '.') {
      integer = false;
      i++;
      if (!(text[i] >= '0' && text[i] <= '9')) fail('invalid number');
      while (text[i] >= '0' && text[i] <= '9') i++;
    }
    if (text[i] === 'e' || text[i] === 'E') {
      integer = false;
      i++;
      if (text[i] === '+' || text[i] === '-') i++;
      if (!(text[i] >= '0' && text[i] <= '9')) fail('invalid number');
      while (text[i] >= '0' && text[i] <= '9') i++;
    }
    const lit = text.slice(start, i);
    if (!integer) return new JsonFloat(Number(lit));
    const v = Number(lit);
    if (Number.isSafeInteger(v)) return v === 0 ? 0 : v;  // "-0" is 0
    return BigInt(lit);
  };

  const parseLiteral = (word: string, value: JsonValue): JsonValue => {
    if (text.startsWith(word, i)) {
      i += word.length;
      return value;
    }
    return fail('unexpected token');
  };

  const parseValue = (depth: number, path: string): JsonValue => {
    skipWs();
    if (i >= n) fail('unexpected end of JSON');
    const c = text[i];
    if (c === '{') {
      if (depth >= MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
      i++;
      const obj: JsonObject = new Map();
      skipWs();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        skipWs();
        if (text[i] !== '"') fail('expected a string key');
        const key = parseString();
        skipWs();
        if (text[i] !== ':') fail("expected ':'");
        i++;
        const v = parseValue(depth + 1, path ? `${path}.${key}` : key);
        if (obj.has(key)) throw new JsonDuplicateKeyError(key, path);
        obj.set(key, v);
        skipWs();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      if (depth >= MAX_DEPTH) fail(`nesting deeper than ${MAX_DEPTH}`);
      i++;
      const arr: JsonValue[] = [];
      skipWs();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(parseValue(depth + 1, path));
        skipWs();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return parseString();
    if (c === 't') return parseLiteral('true', true);
    if (c === 'f') return parseLiteral('false', false);
    if (c === 'n') return parseLiteral('null', null);
    if (c === '-' || (c >= '0' && c <= '9')) return parseNumber();
    return fail('unexpected token');
  };

  const v = parseValue(0, '');
  skipWs();
  if (i !== n) fail('unexpected data after the JSON value');
  return v;
}
