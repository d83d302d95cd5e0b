// A terminal progress display for resolveModel's onProgress. On a TTY: one live line (bar, percent,
// bytes, file) redrawn at most 10 times a second, and a permanent line per finished file. Anywhere
// else (a pipe, a log file): only the line per finished file.
import type { DownloadProgress } from './resolve';

export interface ProgressBar {
  /** Pass as `onProgress` to resolveModel. */
  readonly update: (p: DownloadProgress) => void;
  /** Clears the live line; call once resolveModel has settled. */
  finish(): void;
}

/** 1234567 -> '1.2 MB' (decimal units). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do {
    v /= 1000;
    i++;
  } while (v >= 1000 && i < units.length - 1);
  return `${v.toFixed(1)} ${units[i]}`;
}

interface Writable {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export function createProgressBar(stream: Writable = process.stderr): ProgressBar {
  const tty = stream.isTTY === true;
  const active = new Map<string, DownloadProgress>();
  let current: string | undefined;
  let drawn = false;
  let lastDraw = 0;

  const clear = () => {
    if (drawn) stream.write('\r\x1b[K');
    drawn = false;
  };

  const draw = () => {
    const p = current !== undefined ? active.get(current) : undefined;
    if (!p) {
      clear();
      return;
    }
    const width = Math.max(40, (stream.columns ?? 80) - 1);
    const more = active.size > 1 ? ` (+${active.size - 1})` : '';
    let head: string;
    if (p.total) {
      const frac = Math.min(1, p.downloaded / p.total);
      const barWidth = 20;
      const fill = Math.round(frac * barWidth);
      head = `[${'#'.repeat(fill)}${'-'.repeat(barWidth - fill)}] ${String(Math.floor(frac * 100)).padStart(3)}% ${formatBytes(p.downloaded)}/${formatBytes(p.total)} `;
    } else {
      head = `${formatBytes(p.downloaded)} `;
    }
    let name = p.file + more;
    const room = width - head.length;
    if (name.length > room) name = `…${name.slice(name.length - Math.max(1, room - 1))}`;
    stream.write(`\r${head}${name}\x1b[K`);
    drawn = true;
    lastDraw = Date.now();
  };

  const update = (p: DownloadProgress) => {
    if (p.done) {
      active.delete(p.file);
      if (current === p.file) current = active.keys().next().value;
      if (tty) clear();
      stream.write(`${p.file} ${formatBytes(p.total ?? p.downloaded)}\n`);
      if (tty) draw();
      return;
    }
    active.set(p.file, p);
    current = p.file;
    if (tty && Date.now() - lastDraw >= 100) draw();
  };

  return {
    update,
    finish: () => {
      if (tty) clear();
      active.clear();
      current = undefined;
    },
  };
}
