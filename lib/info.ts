// onestep.info(): what this installation can do, and exactly why CUDA cannot run when it cannot.
import { addon, addonPath, cudaLibraryPath, cudaLibraryPresent, type NativeCudaDevice } from './native';
import { version } from './version';

/** A vendor math library the CUDA backend loads at run time (cuBLASLt, cuDNN) and what it runs. */
export interface MathLibraryInfo {
  name: string;
  loaded: boolean;
  /** e.g. '13.1.0' (from the library's version call) */
  version?: string;
  path?: string;
  /** the ops it runs; the rest, and everything when it is not loaded, run on onestep's own kernels */
  ops?: string;
  /** why it is not loaded (not found, wrong version, broken, turned off) */
  reason?: string;
}

export interface CudaInfo {
  /** The CUDA backend library was built and sits next to the addon. */
  compiled: boolean;
  /** A GPU answered the probe: device 'cuda' will work. */
  usable: boolean;
  /** Why CUDA is unusable (library absent, no driver, no device, ...); undefined when usable. */
  reason: string | undefined;
  library: string;
  /** CUDA runtime and GPU architectures the library was compiled for. */
  buildInfo: string | undefined;
  devices: NativeCudaDevice[];
  /** Vendor math libraries (empty unless usable): which were found and which ops they take. */
  mathLibraries: MathLibraryInfo[];
}

export interface Info {
  version: string;
  node: string;
  platform: string;
  arch: string;
  addon: string;
  backends: {
    cpu: { compiled: true; usable: true; threads: number; simd: string[] };
    cuda: CudaInfo;
  };
}

export function info(): Info {
  const a = addon();
  const cpu = a.cpuInfo();
  const library = cudaLibraryPath();
  const compiled = cudaLibraryPresent();
  const s = a.cudaStatus(compiled ? library : '');
  return {
    version,
    node: process.versions.node,
    platform: process.platform,
    arch: process.arch,
    addon: addonPath(),
    backends: {
      cpu: { compiled: true, usable: true, threads: cpu.threads, simd: cpu.simd },
      cuda: {
        compiled,
        usable: s.usable,
        reason: s.usable ? undefined : compiled ? s.reason : `the CUDA backend library was not built (${library} is absent)`,
        library,
        buildInfo: s.buildInfo || undefined,
        devices: s.devices,
        mathLibraries: s.usable ? parseMathLibraries(s.mathLibraries) : [],
      },
    },
  };
}

function parseMathLibraries(json: string): MathLibraryInfo[] {
  try {
    const v: unknown = JSON.parse(json || '[]');
    return Array.isArray(v) ? (v as MathLibraryInfo[]) : [];
  } catch {
    return [{ name: 'unknown', loaded: false, reason: `the CUDA library's math_libraries report is not JSON: ${json}` }];
  }
}

/** Human-readable form of info(), as `npx onestep info` prints it. */
export function formatInfo(i: Info): string {
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;
  const lines = [
    `onestep ${i.version} (node ${i.node}, ${i.platform}-${i.arch})`,
    `addon: ${i.addon}`,
    `cpu:  usable, ${i.backends.cpu.threads} threads, simd: ${i.backends.cpu.simd.join(' ') || 'none'}`,
  ];
  const c = i.backends.cuda;
  if (c.usable) {
    lines.push(`cuda: usable (${c.buildInfo ?? ''})`);
    for (const d of c.devices) {
      lines.push(`  [${d.index}] ${d.name}, ${gib(d.totalMemory)}, compute capability ${d.computeCapability}, ${d.multiprocessors} SMs`);
    }
    for (const m of c.mathLibraries) {
      if (m.loaded) lines.push(`  ${m.name} ${m.version ?? ''} (${m.path ?? ''}): ${m.ops ?? ''}`);
      else lines.push(`  warning: ${m.name} not used, onestep's own kernels run instead: ${m.reason ?? 'not found'}`);
    }
  } else {
    lines.push(`cuda: unusable: ${c.reason}`);
    if (c.compiled && c.buildInfo) lines.push(`  library: ${c.library} (${c.buildInfo})`);
  }
  return lines.join('\n');
}
