// Pinning a process (its threads and children) to one CPU with taskset, so
// that a UDP sender and its receiver run on different cores. Unpinned, the
// kernel spreads a sender's threads over both cores of a small machine, the
// receiver shares one with them, and the figure measures that placement more
// than the sender.
import { spawnSync } from 'node:child_process';

export interface SenderReceiverCpus {
  sender: number;
  receiver: number;
}

/** CPUs 0 and 1 for a sender and its receiver, or undefined where this process cannot pin to both (one CPU, a cpuset without them, no taskset). */
export function senderReceiverCpus(): SenderReceiverCpus | undefined {
  const allowed = (cpu: number) => spawnSync('taskset', ['-c', String(cpu), 'true']).status === 0;
  return allowed(0) && allowed(1) ? { sender: 0, receiver: 1 } : undefined;
}

/** The command line that runs `file args` on `cpu` only; `file args` unchanged when `cpu` is undefined. */
export function onCpu(cpu: number | undefined, file: string, args: readonly string[]): [string, string[]] {
  return cpu === undefined ? [file, [...args]] : ['taskset', ['-c', String(cpu), file, ...args]];
}
