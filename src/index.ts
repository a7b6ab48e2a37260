export { ReadFile, ReadDirectory } from './reader.js';
export type { ReadOptions, ReadDirectoryOptions, LogHeader, LogStream, RecordReader } from './reader.js';
export { ReadPcap } from './pcap.js';
export type { ReadPcapOptions, PcapFilterOptions, CaptureCounts, CapturedMessage } from './pcap.js';
export { summarizeLog } from './summary.js';
export type { LogSummary, TopicSummary } from './summary.js';
export { BufferData, BufferQueue } from './buffer.js';
export type { BufferOptions } from './buffer.js';
export { ScheduleBroadcasts } from './scheduler.js';
export type { PendingDeliveries, ReplayStats, ScheduleOptions, ScheduleEvents, SchedulerStats } from './scheduler.js';
export { Replay } from './replay.js';
export type { ReplayOptions, ReplayEvents } from './replay.js';
export type { Message, LoggedMessage, DeliveryOptions } from './message.js';
export {
  NetreplayError,
  LogAccessError,
  NetworkError,
  MalformedRecordError,
  LogLayoutError,
  ReplayStateError,
} from './errors.js';
export { Listener, WriteFile, Recording, record } from './net.js';
export type {
  UdpOptions,
  UdpRoute,
  UdpStats,
  ListenerOptions,
  ListenerEvents,
  ListenerStats,
  ReceivedMessage,
  WriteFileOptions,
  RecordSource,
  RecordOptions,
  RecordingSummary,
} from './net.js';
