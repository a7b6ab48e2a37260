export { ReadFile, ReadDirectory, LogReader } from './reader.js';
export type { ReadOptions, ReadDirectoryOptions, LogHeader, LogStream, RecordReader } from './reader.js';
export { ReadMcap, convert } from './mcap.js';
export type { ReadMcapOptions, ConvertOptions, ConvertSummary } from './mcap.js';
export { ReadPcap } from './pcap.js';
export type { ReadPcapOptions, PcapFilterOptions, CaptureCounts, CapturedMessage } from './pcap.js';
export { summarizeLog } from './summary.js';
export type { LogSummary, TopicSummary } from './summary.js';
export { BufferData, BufferQueue } from './buffer.js';
export type { BufferOptions } from './buffer.js';
export { ScheduleBroadcasts } from './scheduler.js';
export type { PendingDeliveries, ReplayStats, ScheduleOptions, ScheduleEvents, SchedulerStats } from './scheduler.js';
export { Replay } from './replay.js';
export type { ReplayOptions, ReplayEvents, Progress } from './replay.js';
export { serveControl, parseControlAddress } from './control.js';
export type { ControlOptions, ControlServer, ControlStatus } from './control.js';
export { serveFoxglove, parseFoxgloveAddress, FOXGLOVE_DEFAULT_PORT, PARAMETERS as FOXGLOVE_PARAMETERS, SERVICES as FOXGLOVE_SERVICES } from './foxglove.js';
export type { FoxgloveOptions, FoxgloveBridge, FoxgloveStats } from './foxglove.js';
export type { ListenAddress } from './listen.js';
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
