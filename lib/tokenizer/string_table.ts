// A read-only string -> integer map in a handful of heap objects: the keys joined into one string,
// their offsets, values and an open-addressing hash table in typed arrays. A CLIP vocabulary and
// its merge ranks are ~100k entries; as Maps they are ~10 MB of small objects that every major
// garbage collection walks (each a ~5 ms pause on a 2-core machine, stalling a server's event
// loop), as tables a few flat allocations it skips.

/** FNV-1a over UTF-16 code units, 32-bit. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export class StringTable {
  private readonly text: string;
  private readonly start: Int32Array; // key i is text[start[i], start[i + 1])
  private readonly values: Int32Array;
  private readonly slots: Int32Array; // entry index + 1; 0 is empty
  private readonly mask: number;

  /** Entries in order; a key seen again takes the later value (as a Map's set). Values are int32. */
  constructor(entries: Iterable<readonly [string, number]>) {
    const keys: string[] = [];
    const vals: number[] = [];
    for (const [k, v] of entries) {
      keys.push(k);
      vals.push(v);
    }
    let cap = 1;
    while (cap < keys.length * 2) cap *= 2;
    this.mask = cap - 1;
    this.slots = new Int32Array(cap);
    this.start = new Int32Array(keys.length + 1);
    this.values = new Int32Array(keys.length);
    // a duplicate key finds its first entry's slot and updates the value there
    let at = 0;
    const kept: string[] = [];
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i] as string;
      const slot = this.find(k, kept);
      if (this.slots[slot] !== 0) {
        this.values[this.slots[slot] - 1] = vals[i] as number;
        continue;
      }
      const e = kept.length;
      kept.push(k);
      this.start[e] = at;
      at += k.length;
      this.start[e + 1] = at;
      this.values[e] = vals[i] as number;
      this.slots[slot] = e + 1;
    }
    this.text = kept.join('');
    this.size = kept.length;
  }

  /** distinct keys */
  readonly size: number;

  // the slot of `key`: where it is, or the empty slot it would take (while building, keys are
  // compared in `building`, the text not being joined yet)
  private find(key: string, building?: string[]): number {
    const h = hash(key);
    for (let i = h & this.mask; ; i = (i + 1) & this.mask) {
      const e = this.slots[i] as number;
      if (e === 0) return i;
      if (building ? building[e - 1] === key : this.keyIs(e - 1, key)) return i;
    }
  }

  private keyIs(e: number, key: string): boolean {
    const s = this.start[e] as number;
    return (this.start[e + 1] as number) - s === key.length && this.text.startsWith(key, s);
  }

  get(key: string): number | undefined {
    const e = this.slots[this.find(key)] as number;
    return e === 0 ? undefined : (this.values[e - 1] as number);
  }

  has(key: string): boolean {
    return this.slots[this.find(key)] !== 0;
  }

  /** The i-th distinct key (first-seen order) and its value. */
  keyAt(i: number): string {
    return this.text.slice(this.start[i], this.start[i + 1]);
  }

  valueAt(i: number): number {
    return this.values[i] as number;
  }
}
