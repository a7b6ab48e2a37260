// `netreplay play`: replay logs with their timing, to stdout and/or UDP,
// with a live status line, keys and remote control.
import { Replay, type ReplayOptions, type Progress } from '../replay.js';
import type { Message } from '../message.js';
import type { UdpOptions, UdpRoute } from '../net.js';
import type { NamePattern } from '../playback.js';
import {
  choice,
  flag,
  instant,
  integer,
  list,
  parseCommand,
  positiveNumber,
  regex,
  seconds,
  speed,
  text,
  UsageError,
  type Command,
  type Values,
} from './args.js';
import { formatMicros, formatStatus, StatusLine } from './status.js';
import { KEY_HELP, KeyReader, type KeyAction } from './keys.js';
import { CAPTURE_FILTER_FLAGS, captureFilterFlags, formatLine, formatJson, MCAP_READ_FLAGS, mcapReadFlags, readWindowFlags, READ_FLAGS } from './output.js';
import { parseControlAddress, serveControl } from '../control.js';
import { parseFoxgloveAddress, serveFoxglove } from '../foxglove.js';
import type { ListenAddress } from '../listen.js';

export const PLAY: Command = {
  name: 'play',
  operands: '<path>...',
  brief: 'Replay logs with their timing, to stdout and/or UDP',
  summary:
    'Replay logs (files, split-set prefixes or recording directories; several are merged in time order) with their ' +
    'original timing, printing one line per message (time, topic, type, payload) and/or sending each message over UDP. ' +
    'A pcap or pcapng capture (known by its content) plays its UDP datagrams: topic = the original destination ip:port, ' +
    'payload printed as hex; --to-original, --to or --map send them as they are.',
  groups: [
    {
      heading: 'Timing',
      flags: [
        { name: 'speed', short: 's', value: 'X', help: "Play X times as fast as logged; 'inf' plays as fast as possible. Default 1." },
        { name: 'rate', short: 'r', value: 'X', help: 'The same as --speed (the name ros2 bag play uses).' },
        { name: 'loop', value: 'N', optional: /^\d+$/, help: 'Play the log again at its end: for ever, or N passes in all (0: for ever).' },
        { name: 'loop-delay', value: 'S', help: 'Seconds of log time between passes, after one mean gap.' },
        { name: 'continuous-time', help: "Each pass's times continue the last one's, so times never go backwards." },
        { name: 'start-offset', value: 'S', help: "Start each pass S seconds after the log's first message." },
        { name: 'duration', value: 'S', help: 'Play S seconds of the log per pass.' },
        { name: 'until', value: 'S', help: 'End each pass at log time S.' },
        { name: 'limit', value: 'N', help: 'End after N messages (across passes).' },
        { name: 'start-paused', help: 'Start paused on the first message (space or → go on).' },
        { name: 'delay', value: 'S', help: 'Wait S seconds of wall-clock time before the first message, and before each pass.' },
        { name: 'max-gap', value: 'S', help: 'No wait between two messages is longer than S seconds (tcpreplay --maxsleep).' },
        { name: 'pps', value: 'N', help: 'Ignore the logged times: N messages per second (tcpreplay --pps).' },
        { name: 'mbps', value: 'X', help: 'Ignore the logged times: X megabits of payload per second (tcpreplay --mbps).' },
        {
          name: 'start-at',
          value: 'TIME',
          help: 'The first message is due at this wall-clock time: ISO 8601 (2026-12-02T10:00:00Z), nanoseconds since the epoch, or +S seconds from now.',
        },
        { name: 'clock', value: 'HZ', optional: /^\d+(\.\d+)?$/, help: "Send the logical time HZ times a second (default 40) as ['/clock', {name, time, timeNs}] datagrams, to --clock-to or else --udp." },
        { name: 'clock-to', value: 'URL', help: 'Where --clock ticks go (udp://host:port).' },
        { name: 'spin-margin', value: 'S', help: 'Stop sleeping S seconds before each deadline and spin (default: learned from the wake-ups; CPU ≈ S × rate).' },
        { name: 'busy-wait', value: 'S', help: 'Spin through every wait up to S seconds instead of sleeping (default 0; a core for the best timing).' },
        {
          name: 'realtime',
          value: 'auto|on|off',
          help: 'Wait in the real-time class (SCHED_FIFO, priority 1) so busy threads cannot delay the timing: auto (default) when permitted (root, CAP_SYS_NICE or ulimit -r) and 2+ CPUs; on: fail if refused; off: never.',
        },
        ...READ_FLAGS,
      ],
    },
    {
      heading: 'Selection',
      flags: [
        { name: 'topics', value: 'TOPIC', greedy: true, help: 'Play only these topics (the words up to the next flag; or repeat --topics=T).' },
        { name: 'exclude-topics', value: 'TOPIC', greedy: true, help: 'Leave out these topics.' },
        { name: 'regex', short: 'e', value: 'RE', multiple: true, help: 'Also play topics matching this regular expression (anywhere in the name).' },
        { name: 'exclude-regex', short: 'x', value: 'RE', multiple: true, help: 'Leave out topics matching this regular expression.' },
        { name: 'types', value: 'TYPE', greedy: true, help: "Play only these message types (a raw stream's type is None)." },
        { name: 'exclude-types', value: 'TYPE', greedy: true, help: 'Leave out these message types.' },
        { name: 'remap', value: 'FROM:=TO', greedy: true, help: 'Rename topics (after the filters).' },
        { name: 'backfill', help: 'At a seek, a start offset or a loop, first deliver the last message of each type and topic before it.' },
      ],
    },
    {
      heading: 'Output',
      flags: [
        { name: 'json', help: 'One JSON object per message (NDJSON): time, topic, type, payload, lateness, pass, backfill.' },
        { name: 'quiet', short: 'q', help: 'Print no messages (the status line and the summary stay).' },
        { name: 'no-print', help: 'Send without delivering to JS at all (needs --udp or --route; fastest).' },
        { name: 'no-progress', help: 'No live status line (it is shown only when stderr is a terminal).' },
        { name: 'no-keys', help: 'Do not read keys (they are read only when stdin is a terminal).' },
        { name: 'fail-on-error', help: 'Exit 1 at the first failed UDP send (default: count them and go on).' },
      ],
    },
    {
      heading: 'UDP',
      flags: [
        { name: 'udp', value: 'URL', help: 'Send every message as MCL datagrams to URL (udp://host:port, udp://[ipv6]:port, multicast too).' },
        { name: 'route', value: 'KEY=URL', multiple: true, help: 'Send a type (Type=URL), a topic (@topic=URL) or both (Type@topic=URL) to its own address.' },
        { name: 'hop-limit', value: 'N', help: 'Multicast TTL / hop limit (default 3).' },
        { name: 'interface', value: 'IF', help: 'Outgoing multicast interface: name, index or IPv4 address.' },
        { name: 'mtu', value: 'BYTES', help: 'Largest datagram (default 60000); larger payloads are fragmented.' },
        { name: 'no-multicast-loop', help: 'Do not loop multicast back to listeners on this host.' },
        { name: 'no-loop', help: 'Deprecated spelling of --no-multicast-loop (it never meant playback looping: see --loop).' },
      ],
    },
    {
      heading: 'Captures (pcap, pcapng)',
      flags: [
        ...CAPTURE_FILTER_FLAGS,
        { name: 'to-original', help: 'Send each datagram, as it is, to its original destination (ordinary UDP sockets: no root).' },
        { name: 'to', value: 'URL', help: 'Send every datagram, as it is, to URL (udp://host:port) instead; --map entries win.' },
        {
          name: 'map',
          value: 'ORIG=URL',
          multiple: true,
          help: 'Send datagrams for ORIG (ip:port, [v6]:port, or *:port for any address on that port) to URL; the rest go to --to, or else to their original destinations.',
        },
      ],
    },
    { heading: 'MCAP', flags: MCAP_READ_FLAGS },
    {
      heading: 'Control',
      flags: [
        { name: 'control', value: 'URL', help: 'Serve a JSON control API (status, pause, resume, stop, seek, step, speed) at http://HOST:PORT (loopback unless a host is given).' },
        { name: 'foxglove', value: 'URL', optional: /^(ws:\/\/|\d+$|:\d+$|\[[^\]]*\]:\d+$|[\w.-]+:\d+$)/, help: 'Serve the replay over the Foxglove WebSocket protocol (default ws://127.0.0.1:8765).' },
      ],
    },
  ],
  notes: [
    `Keys (stdin a terminal): space pause/resume, → step one message, ↑/↓ speed ×1.25/÷1.25, shift+←/→ seek ∓/±5 s, l toggle loop, q or Ctrl-C quit.`,
    'Exit status: 0 done, 1 runtime error (unreadable or malformed log, failed sends with --fail-on-error), 2 usage, 130 Ctrl-C, 143 SIGTERM.',
  ],
};

// API option names in error messages from the engine, as the flags that set them.
const FLAG_OF_OPTION: [RegExp, string][] = [
  [/'startOffset'/g, '--start-offset'],
  [/'duration'/g, '--duration'],
  [/'until'/g, '--until'],
  [/'limit'/g, '--limit'],
  [/'delay'/g, '--delay'],
  [/'loopDelay'/g, '--loop-delay'],
  [/'loop'|'passes'/g, '--loop'],
  [/'maxGap'/g, '--max-gap'],
  [/'spinMargin'/g, '--spin-margin'],
  [/'busyWait'/g, '--busy-wait'],
  [/'realtime'/g, '--realtime'],
  [/'rate\.messagesPerSecond'|'messagesPerSecond'/g, '--pps'],
  [/'rate\.bytesPerSecond'|'bytesPerSecond'/g, '--mbps'],
  [/'rate'/g, '--pps/--mbps'],
  [/'speed'/g, '--speed'],
  [/'startAt'/g, '--start-at'],
  [/'clock\.hz'|'clockHz'|'clock'/g, '--clock'],
  [/'clock\.destination'|'clockDestination'/g, '--clock-to'],
  [/'minTime'/g, '--min-time'],
  [/'maxTime'/g, '--max-time'],
  [/'hopLimit'/g, '--hop-limit'],
  [/'mtu'/g, '--mtu'],
  [/'interface'/g, '--interface'],
  [/'destination'/g, '--udp'],
  [/'filter'/g, '--filter'],
  [/'dstPort'/g, '--dst-port'],
  [/'src'/g, '--src'],
  [/'map'/g, '--map'],
  [/'timestamp'/g, '--timestamp'],
];

export function asFlags(message: string): string {
  return FLAG_OF_OPTION.reduce((m, [re, flagName]) => m.replace(re, flagName), message);
}

/** `Type=url`, `@topic=url` or `Type@topic=url`. */
function parseRoute(route: string): UdpRoute {
  const eq = route.indexOf('=');
  if (eq <= 0 || eq === route.length - 1) throw new UsageError(`--route must be <Type|@topic|Type@topic>=<url>, got '${route}'`);
  const key = route.slice(0, eq);
  const destination = route.slice(eq + 1);
  const at = key.indexOf('@');
  if (at < 0) return { type: key, destination };
  const type = key.slice(0, at);
  return { ...(type && { type }), topic: key.slice(at + 1), destination };
}

/** `ip:port=URL` or `*:port=URL` (the first '=' after the address). */
function parseMap(entry: string): [string, string] {
  const eq = entry.indexOf('=');
  if (eq <= 0 || eq === entry.length - 1) throw new UsageError(`--map must be <ip:port|*:port>=<url>, got '${entry}'`);
  return [entry.slice(0, eq), entry.slice(eq + 1)];
}

/** --to-original, --to and --map: a capture's datagrams sent as they are, by their original destinations. */
function captureUdp(values: Values): UdpOptions | undefined {
  const to = text(values, 'to');
  const map = list(values, 'map').map(parseMap);
  if (to === undefined && map.length === 0 && !flag(values, 'to-original')) return undefined;
  if (text(values, 'udp') !== undefined || list(values, 'route').length > 0) {
    throw new UsageError("--to-original, --to and --map send a capture's datagrams as they are; --udp and --route send MCL datagrams: give one kind");
  }
  return { raw: true, byAddress: true, ...(to !== undefined && { destination: to }), ...(map.length > 0 && { map: Object.fromEntries(map) }) };
}

function udpOptions(values: Values): UdpOptions | undefined {
  const routes = list(values, 'route').map(parseRoute);
  const destination = text(values, 'udp');
  const noMulticastLoop = flag(values, 'no-multicast-loop') || flag(values, 'no-loop');
  const capture = captureUdp(values);
  if (capture) {
    if (values.mtu !== undefined) throw new UsageError("--mtu does not apply to a capture's datagrams (each is sent whole, as it is)");
    const hopLimit = integer(values, 'hop-limit');
    return {
      ...capture,
      ...(hopLimit !== undefined && { hopLimit }),
      ...(text(values, 'interface') !== undefined && { interface: text(values, 'interface') }),
      ...(noMulticastLoop && { multicastLoop: false }),
      ...(flag(values, 'fail-on-error') && { failOnError: true }),
    };
  }
  if (destination === undefined && routes.length === 0) {
    for (const name of ['hop-limit', 'interface', 'mtu', 'no-multicast-loop', 'no-loop', 'fail-on-error']) {
      if (values[name] !== undefined) throw new UsageError(`--${name} needs --udp or --route`);
    }
    return undefined;
  }
  const hopLimit = integer(values, 'hop-limit');
  const mtu = integer(values, 'mtu');
  return {
    ...(destination !== undefined && { destination }),
    ...(routes.length > 0 && { routes }),
    ...(hopLimit !== undefined && { hopLimit }),
    ...(mtu !== undefined && { mtu }),
    ...(text(values, 'interface') !== undefined && { interface: text(values, 'interface') }),
    ...(noMulticastLoop && { multicastLoop: false }),
    ...(flag(values, 'fail-on-error') && { failOnError: true }),
  };
}

function remapOf(values: Values): Record<string, string> | undefined {
  const pairs = list(values, 'remap');
  if (pairs.length === 0) return undefined;
  const remap: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf(':=');
    if (at <= 0 || at === pair.length - 2) throw new UsageError(`--remap must be FROM:=TO, got '${pair}'`);
    remap[pair.slice(0, at)] = pair.slice(at + 2);
  }
  return remap;
}

function patternsOf(values: Values, exact: string, re?: string): NamePattern[] | undefined {
  const patterns: NamePattern[] = [...list(values, exact), ...(re ? list(values, re).map((r) => regex(r, re)) : [])];
  return patterns.length ? patterns : undefined;
}

/** The Replay options the flags ask for. */
export function replayOptions(values: Values): ReplayOptions {
  const o: ReplayOptions = { ...readWindowFlags(values), ...captureFilterFlags(values), ...mcapReadFlags(values) };
  const speedText = text(values, 'speed') ?? text(values, 'rate');
  if (text(values, 'speed') !== undefined && text(values, 'rate') !== undefined) {
    throw new UsageError('give --speed or --rate, not both (they are the same)');
  }
  if (speedText !== undefined) o.speed = speed(speedText, text(values, 'speed') !== undefined ? 'speed' : 'rate');
  const loop = text(values, 'loop');
  if (loop !== undefined) {
    const n = loop === '' ? 0 : integer(values, 'loop')!;
    o.loop = n === 0 ? true : n;
  }
  const set = <K extends keyof ReplayOptions>(key: K, value: ReplayOptions[K] | undefined) => {
    if (value !== undefined) o[key] = value;
  };
  set('loopDelay', seconds(values, 'loop-delay', 'nonNegative'));
  if (flag(values, 'continuous-time')) o.continuousTime = true;
  set('startOffset', seconds(values, 'start-offset', 'nonNegative'));
  set('duration', seconds(values, 'duration', 'nonNegative'));
  set('until', seconds(values, 'until'));
  set('limit', integer(values, 'limit', 1));
  if (flag(values, 'start-paused')) o.startPaused = true;
  set('delay', seconds(values, 'delay', 'nonNegative'));
  set('maxGap', seconds(values, 'max-gap', 'positive'));
  set('spinMargin', seconds(values, 'spin-margin', 'nonNegative'));
  set('busyWait', seconds(values, 'busy-wait', 'nonNegative'));
  const realtime = choice(values, 'realtime', ['auto', 'on', 'off'] as const);
  if (realtime !== undefined) o.realtime = realtime === 'auto' ? 'auto' : realtime === 'on';
  const pps = positiveNumber(values, 'pps', 'a number of messages per second > 0');
  const mbps = positiveNumber(values, 'mbps', 'a number of megabits per second > 0');
  if (pps !== undefined && mbps !== undefined) throw new UsageError('give --pps or --mbps, not both');
  if (pps !== undefined) o.rate = { messagesPerSecond: pps };
  if (mbps !== undefined) o.rate = { bytesPerSecond: (mbps * 1e6) / 8 };
  const startAt = text(values, 'start-at');
  if (startAt !== undefined) o.startAt = instant(startAt, 'start-at');
  const clock = text(values, 'clock');
  const clockTo = text(values, 'clock-to') ?? text(values, 'udp');
  if (clock !== undefined) {
    if (clockTo === undefined) throw new UsageError('--clock needs --clock-to or --udp (where to send the ticks)');
    const hz = clock === '' ? 40 : positiveNumber(values, 'clock', 'a rate in Hz > 0')!;
    o.clock = { hz, destination: clockTo };
  } else if (text(values, 'clock-to') !== undefined) throw new UsageError('--clock-to needs --clock');
  set('topics', patternsOf(values, 'topics', 'regex'));
  set('excludeTopics', patternsOf(values, 'exclude-topics', 'exclude-regex'));
  set('types', patternsOf(values, 'types'));
  set('excludeTypes', patternsOf(values, 'exclude-types'));
  set('remap', remapOf(values));
  if (flag(values, 'backfill')) o.backfill = true;
  const udp = udpOptions(values);
  if (udp) o.udp = udp;
  if (flag(values, 'no-print')) {
    if (!udp) throw new UsageError('--no-print needs --udp, --route, --to-original, --to or --map (nothing would be played)');
    o.js = false;
  }
  return o;
}

/** How the replay ended, as an exit status. */
const EXIT_INTERRUPTED = 130;
const EXIT_TERMINATED = 143;

export async function play(argv: string[], stdout: NodeJS.WriteStream, stderr: NodeJS.WriteStream): Promise<number> {
  const { values, positionals } = parseCommand(PLAY, argv);
  if (positionals.length === 0) {
    throw new UsageError(
      'play needs at least one <path>' +
        (list(values, 'topics').length + list(values, 'types').length + list(values, 'remap').length > 0
          ? ' (--topics, --types and --remap take every word after them: put the paths first, or write --topics=T)'
          : ''),
    );
  }
  const options = replayOptions(values);
  if (flag(values, 'no-loop')) {
    stderr.write('netreplay: --no-loop is deprecated: it means no multicast loopback; write --no-multicast-loop (playback looping is --loop)\n');
  }
  const json = flag(values, 'json');
  const quiet = flag(values, 'quiet');
  const statusOn = stderr.isTTY === true && !flag(values, 'no-progress');
  const keysOn = process.stdin.isTTY === true && !flag(values, 'no-keys');
  const colour = statusOn && !process.env.NO_COLOR;
  const js = options.js !== false;
  const addresses = remoteAddresses(values, js);
  const loopOption = options.loop;
  // The `l` key: 'on' loops for ever (a finite native loop, or none, plays
  // again from the start at its end); 'off' ends at the end of the pass
  // playing; 'asGiven' is what --loop said.
  let loopMode = 'asGiven' as 'asGiven' | 'on' | 'off';
  const looping = () => loopMode === 'on' || (loopMode === 'asGiven' && loopOption !== undefined && loopOption !== 1);
  /** With loop turned off while the engine loops: the last pass to play. */
  let lastPass: number | undefined;
  let restarts = 0;

  let replay: Replay;
  try {
    replay = new Replay(positionals.length === 1 ? positionals[0]! : positionals, {
      ...options,
      ...(js && { rawPayload: true }),
      ...(statusOn && { progressInterval: 0.2 }),
    });
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw new UsageError(asFlags(err.message));
    throw err;
  }

  const status = statusOn ? new StatusLine(stderr) : undefined;
  const say = (line: string) => (status ? status.print(stderr, `${line}\n`) : stderr.write(`${line}\n`));
  let exitCode = 0;
  let endedNaturally = false;
  let stopping = false;
  /** What the run reached, taken before stop() rewinds it (and resets its statistics). */
  let final: { progress: Progress; stats: ReturnType<Replay['stats']>; udp: ReturnType<Replay['udpStats']> } | undefined;
  const snapshot = () => ({ progress: replay.progress(), stats: replay.stats(), udp: replay.udpStats() });
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    final = snapshot();
    replay.stop();
  };

  let count = 0;
  let bytes = 0;
  const out: string[] = [];
  // Messages of one engine batch arrive in one tick: write them at once, at replay time.
  const flush = () => {
    if (!out.length) return;
    const lines = `${out.splice(0).join('\n')}\n`;
    if (status) status.print(stdout, lines);
    else stdout.write(lines);
  };
  replay.on('message', (m: Message) => {
    if (lastPass !== undefined && m.pass > lastPass) return void queueMicrotask(() => stop(0));
    count++;
    bytes += m.payloadBytes?.byteLength ?? 0;
    if (quiet) return;
    if (out.push(json ? formatJson(m) : formatLine(m)) === 1) queueMicrotask(flush);
  });
  replay.on('loop', (pass) => {
    if (lastPass !== undefined && pass > lastPass) stop(0);
  });
  replay.on('end', () => {
    endedNaturally = true;
  });

  const loopText = (p: Progress): string => {
    if (!looping()) return p.loops === 1 ? 'loop off' : `loop ${p.loop + 1} (last)`;
    if (loopMode === 'on' && p.loops !== null) return `loop ${restarts * p.loops + p.loop + 1}/∞`;
    return `loop ${p.loop + 1}/${p.loops ?? '∞'}`;
  };
  const drawStatus = (p: Progress, taken = snapshot()) => {
    const u = taken.udp;
    status?.update(
      formatStatus(
        {
          progress: p,
          loop: loopText(p),
          udp: u && { sent: u.recordsSent, failed: Object.values(u.failures).reduce((a, b) => a + b, 0) },
          lateP99: u?.lateness.p99 ?? taken.stats.handoverLateness.p99,
        },
        colour,
      ),
    );
  };
  if (status) replay.on('progress', drawStatus);

  const act = (action: KeyAction) => {
    try {
      const p = replay.progress();
      switch (action) {
        case 'togglePause':
          if (p.state === 'playing' || p.state === 'delayed') replay.pause();
          else if (p.state === 'paused' || p.state === 'idle') replay.start();
          break;
        case 'step':
          if (p.state === 'ended') break;
          if (p.state === 'playing' || p.state === 'delayed') replay.pause();
          replay.step(1).catch((err: Error) => say(`netreplay: step: ${err.message}`));
          break;
        case 'faster':
        case 'slower':
          if (Number.isFinite(replay.speed)) replay.speed = action === 'faster' ? replay.speed * 1.25 : replay.speed / 1.25;
          break;
        case 'seekBack':
        case 'seekForward': {
          const at = p.position ?? p.start ?? 0;
          replay.seek(action === 'seekBack' ? at - 5 : at + 5);
          break;
        }
        case 'toggleLoop':
          if (looping()) {
            loopMode = 'off';
            lastPass = p.loop;
          } else {
            loopMode = 'on';
            lastPass = undefined;
          }
          break;
        case 'quit':
          stop(0);
          break;
        case 'interrupt':
          stop(EXIT_INTERRUPTED);
          break;
      }
      if (status) drawStatus(replay.progress());
    } catch (err) {
      say(`netreplay: ${(err as Error).message}`);
    }
  };

  const onSigint = () => stop(EXIT_INTERRUPTED);
  const onSigterm = () => stop(EXIT_TERMINATED);
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  const keys = keysOn ? new KeyReader(process.stdin, act) : undefined;
  if (keys) say(`netreplay: ${KEY_HELP}`);
  let remote: Remote;
  try {
    remote = await startRemote(addresses, replay, say);
  } catch (err) {
    keys?.close();
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    replay.close();
    throw err;
  }

  const started = performance.now();
  try {
    replay.start();
    if (status) drawStatus(replay.progress());
    for (;;) {
      endedNaturally = false;
      await replay.done;
      if (stopping || !endedNaturally || loopMode !== 'on') break;
      restarts++;
      replay.start();
    }
  } catch (err) {
    exitCode = 1;
    say(`netreplay: ${asFlags((err as Error).message)}`);
  } finally {
    flush();
    final ??= snapshot();
    if (status) {
      drawStatus({ ...final.progress, state: 'ended' }, final);
      status.finish();
    }
    keys?.close();
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    await remote.close();
    const elapsed = (performance.now() - started) / 1000;
    const { stats: s, udp: u } = final;
    if (!js) {
      count = s.delivered;
      bytes = u?.bytes ?? 0;
    }
    stderr.write(
      `netreplay: ${count} messages in ${elapsed.toFixed(3)} s (${(count / elapsed).toFixed(1)} messages/s, ` +
        `${(bytes / elapsed / 1e6).toFixed(3)} MB/s${js ? '' : ' on the wire'}); ` +
        `handover lateness p50 ${formatMicros(s.handoverLateness.p50)}, p99 ${formatMicros(s.handoverLateness.p99)}, ` +
        `max ${formatMicros(s.handoverLateness.max)}` +
        `${s.dropped ? `; dropped ${s.dropped}` : ''}${s.skipped ? `; skipped ${s.skipped}` : ''}\n`,
    );
    if (u) {
      const kinds = Object.entries(u.failures)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k} ${n}`);
      stderr.write(
        `netreplay: udp: ${u.recordsSent}/${u.records} messages sent as ${u.datagrams} datagrams (${u.bytes} bytes` +
          `${u.fragmented ? `, ${u.fragmented} fragmented` : ''}${u.unrouted ? `, ${u.unrouted} unrouted` : ''}); ` +
          `send lateness p50 ${formatMicros(u.lateness.p50)}, p99 ${formatMicros(u.lateness.p99)}, max ${formatMicros(u.lateness.max)}; ` +
          `failures: ${kinds.length ? kinds.join(', ') : 'none'}${u.lastError ? ` (last: ${u.lastError})` : ''}\n`,
      );
    }
    replay.close();
  }
  return exitCode;
}

interface Remote {
  close(): Promise<void>;
}

interface RemoteAddresses {
  control?: ListenAddress;
  foxglove?: ListenAddress;
}

/** Where --control and --foxglove listen; a bad address is a usage error. */
function remoteAddresses(values: Values, js: boolean): RemoteAddresses {
  const out: RemoteAddresses = {};
  try {
    const control = text(values, 'control');
    if (control !== undefined) out.control = parseControlAddress(control);
    const foxglove = text(values, 'foxglove');
    if (foxglove !== undefined) out.foxglove = parseFoxgloveAddress(foxglove === '' ? undefined : foxglove);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (out.foxglove && !js) throw new UsageError('--foxglove needs messages delivered to JS: drop --no-print');
  return out;
}

/** The control API and the Foxglove bridge the flags ask for. */
async function startRemote(addresses: RemoteAddresses, replay: Replay, say: (line: string) => void): Promise<Remote> {
  const servers: Remote[] = [];
  if (addresses.control) {
    const control = await serveControl(replay, addresses.control);
    servers.push(control);
    say(`netreplay: control API at ${control.url} (GET /status; POST /pause /resume /stop /seek /step /speed)`);
  }
  if (addresses.foxglove) {
    const bridge = await serveFoxglove(replay, addresses.foxglove);
    servers.push(bridge);
    say(`netreplay: Foxglove WebSocket server at ${bridge.url}`);
  }
  return { close: async () => void (await Promise.all(servers.map((s) => s.close()))) };
}
