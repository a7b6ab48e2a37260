// Micro-benchmarks (tinybench): the engine's stages one at a time.
//  - MCL text decode: a whole log decoded in Rust (no JS per record);
//  - the SPSC ring: records pushed by one thread and popped by another;
//  - delivery to JS at speed Infinity: raw payload bytes, and msgpackr-decoded.
import { Bench } from 'tinybench';
import { Replay } from '../src/index.js';
import { native } from '../src/native.js';
import type { GeneratedLog } from './lib/logs.js';

export interface MicroResult {
  name: string;
  /** Median time of one iteration, ms. */
  medianMs: number;
  iterations: number;
  /** Rates at the median: records/s, and bytes/s when bytes are meaningful. */
  recordsPerSec: number;
  bytesPerSec?: number;
}

async function jsDelivery(log: GeneratedLog, decode: boolean): Promise<void> {
  const replay = new Replay(log.path, { speed: Infinity, decode });
  let n = 0;
  replay.on('message', () => void n++);
  replay.start();
  await replay.done;
  replay.close();
  if (n !== log.records) throw new Error(`delivered ${n} of ${log.records}`);
}

export async function runMicro(opts: { decodeLog: GeneratedLog; deliveryLog: GeneratedLog; ringRecords: number; iterations: number }): Promise<MicroResult[]> {
  const bench = new Bench({ iterations: opts.iterations, time: 0 });
  const { decodeLog, deliveryLog, ringRecords } = opts;
  bench.add(`MCL decode (${(decodeLog.bytes / 1e6).toFixed(0)} MB, ~100-byte maps)`, () => {
    const { records } = native.benchDecodeLog(decodeLog.path);
    if (records !== decodeLog.records) throw new Error(`decoded ${records} of ${decodeLog.records}`);
  });
  bench.add(`ring push/pop (empty payload)`, () => void native.benchRing(ringRecords, 0));
  bench.add(`ring push/pop (100-byte payload)`, () => void native.benchRing(ringRecords, 100));
  bench.add(`JS delivery, raw bytes`, () => jsDelivery(deliveryLog, false));
  bench.add(`JS delivery, msgpackr-decoded`, () => jsDelivery(deliveryLog, true));
  await bench.run();
  const records = [decodeLog.records, ringRecords, ringRecords, deliveryLog.records, deliveryLog.records];
  return bench.tasks.map((task, k) => {
    const result = task.result;
    if (result.state !== 'completed') {
      throw new Error(`${task.name}: ${result.state === 'errored' ? result.error.message : result.state}`);
    }
    const seconds = result.latency.p50 / 1e3;
    return {
      name: task.name,
      medianMs: result.latency.p50,
      iterations: result.latency.samples?.length ?? opts.iterations,
      recordsPerSec: records[k]! / seconds,
      ...(k === 0 && { bytesPerSec: decodeLog.bytes / seconds }),
    };
  });
}
