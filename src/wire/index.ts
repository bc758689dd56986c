/**
 * The wire layer: frame layout, encode/decode, protocol constants, limits and error codes. Pure functions over bytes.
 * @internal Not part of the public API except for the names re-exported by src/index.ts.
 */
export * from './constants.js';
export * from './errors.js';
export * from './frame.js';
export * from './decoder.js';
export * from './metadata.js';
export * from './payloads.js';
export * from './hello.js';
export { utf8, utf8Truncated } from './bytes.js';
