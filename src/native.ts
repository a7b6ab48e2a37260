// Loads the N-API addon built by `npm run build:native` into native/.
import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Binding from '../native/binding.js';

export type {
  NativeBuffer,
  NativeLogReader,
  CaptureInfoJs,
  ConvertSummaryJs,
  NativeScheduler,
  NativePlayer,
  PlayerOptionsJs,
  PlaybackOptionsJs,
  ProgressJs,
  SchedulerOptionsJs,
  NativeRecord,
  ErrorInfo,
  HeaderInfo,
  StreamDescription,
  SchedulerStats,
  LatenessSummary,
  NativeListener,
  NativeRecorder,
  NativeWriteFile,
  ReceivedJs,
  ListenerStatsJs,
  UdpStatsJs,
  UdpOptionsJs,
} from '../native/binding.js';

const require = createRequire(import.meta.url);
const nativeDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'native');

function load(): typeof Binding {
  const abi = process.platform === 'linux' ? '-gnu' : process.platform === 'win32' ? '-msvc' : '';
  const expected = join(nativeDir, `netreplay.${process.platform}-${process.arch}${abi}.node`);
  if (existsSync(expected)) return require(expected) as typeof Binding;
  const found = existsSync(nativeDir)
    ? readdirSync(nativeDir).filter((f) => f.endsWith('.node'))
    : [];
  if (found.length === 1) return require(join(nativeDir, found[0]!)) as typeof Binding;
  throw new Error(
    `netreplay: native addon not found at ${expected} (found: ${found.join(', ') || 'none'}); ` +
      'run `npm run build:native` (needs Rust/cargo)',
  );
}

export const native: typeof Binding = load();
