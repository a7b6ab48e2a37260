// Worker of faults-child.ts `workers`: runs one replay in a worker thread.
// Plain JS on the built package (dist/, native/: `npm run build`), because
// Node 20 workers do not run under tsx's loader.
// Modes: flat-out / timed / paused (then the parent terminates the worker),
// return-playing / return-paused (the script returns and the worker must
// end on its own).
import { parentPort, workerData } from 'node:worker_threads';
import { Replay } from '../dist/index.js';

const { mode, log } = workerData;
const port = parentPort;

switch (mode) {
  case 'flat-out':
  case 'timed':
  case 'paused': {
    const replay = new Replay(log, { speed: mode === 'flat-out' ? Infinity : 0.01 });
    let n = 0;
    replay.on('message', () => {
      if (++n === (mode === 'flat-out' ? 10_000 : 1)) {
        if (mode === 'paused') replay.pause();
        port.postMessage({ n });
      }
    });
    replay.start();
    // Stay alive until terminated, even when paused.
    setInterval(() => {}, 1000);
    break;
  }
  case 'return-playing': {
    // Plays to the end after the script returned; the worker then exits.
    const replay = new Replay(log, { speed: Infinity });
    let n = 0;
    replay.on('message', () => n++);
    replay.on('end', () => port.postMessage({ end: n }));
    replay.on('error', (e) => port.postMessage({ error: String(e) }));
    replay.start();
    port.unref();
    break;
  }
  case 'return-paused': {
    const replay = new Replay(log, { speed: 0.01 });
    replay.once('message', () => {
      replay.pause();
      port.postMessage({ paused: true });
    });
    replay.start();
    port.unref();
    break;
  }
  default:
    throw new Error(`unknown worker mode ${mode}`);
}
