export * from './codes.js';
export * from './decimal.js';
export * from './streams.js';
export * from './entities.js';
export * from './events.js';
export * from './reducer.js';
export * from './messages.js';
export * from './sequencer.js';
