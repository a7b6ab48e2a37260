// The baseline: how a Node user replays a schedule today, without netreplay —
// timers and `dgram`, written carefully:
// - every wait is computed from the absolute deadline (origin + schedule
//   time), so timer overshoot never accumulates into drift;
// - when a timer fires late, everything already due goes out at once;
// - datagrams are prepared before the start, so the loop only sends.
// What it cannot fix is the timer itself: Node timers have 1 ms granularity
// and fire after the event loop gets round to them.
import type { Socket } from 'node:dgram';

const now = () => Number(process.hrtime.bigint());

/** Send datagrams[i] at originNs + timesNs[i] (CLOCK_MONOTONIC); resolves after the last send. */
export function replayWithSetTimeout(
  timesNs: Float64Array,
  datagrams: Buffer[],
  socket: Socket,
  port: number,
  originNs: number,
  host = '127.0.0.1',
): Promise<void> {
  return new Promise((resolve) => {
    let next = 0;
    const tick = () => {
      const t = now();
      while (next < timesNs.length && originNs + timesNs[next]! <= t) {
        socket.send(datagrams[next]!, port, host);
        next++;
      }
      if (next === timesNs.length) {
        resolve();
        return;
      }
      setTimeout(tick, Math.max(0, (originNs + timesNs[next]! - now()) / 1e6));
    };
    tick();
  });
}
