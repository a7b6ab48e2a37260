// lz4js ships no types: the two functions the MCAP tests use.
declare module 'lz4js' {
  /** An LZ4 frame of `data`. */
  export function compress(data: Uint8Array): Uint8Array;
  export function decompress(data: Uint8Array, maxSize?: number): Uint8Array;
}
