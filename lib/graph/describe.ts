// A graph description that can pause between its parts: a generator that `yield`s where the event
// loop may run (between a network's blocks). Run it through at once (describeNow), or with the
// event loop running between parts (describeYielding), so that describing a large network never
// holds the JS thread for long.

export type Description<T> = Generator<void, T, void>;

export function describeNow<T>(d: Description<T>): T {
  for (;;) {
    const r = d.next();
    if (r.done) return r.value;
  }
}

export async function describeYielding<T>(d: Description<T>): Promise<T> {
  for (;;) {
    const r = d.next();
    if (r.done) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
