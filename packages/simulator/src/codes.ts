/**
 * Every reason a simulator command can fail, in one place. The code travels in
 * `command_result.error.code`; the message says what to do about it.
 */
export const CommandErrorCode = {
  /** The command's fields are missing or malformed (see the message). */
  INVALID_COMMAND: 'INVALID_COMMAND',
  /** The action is not one this engine runs. */
  UNKNOWN_ACTION: 'UNKNOWN_ACTION',
  /** The account has no trading desk in this simulator. */
  UNKNOWN_ACCOUNT: 'UNKNOWN_ACCOUNT',
  /** No signal with that id (it may be from an earlier run). */
  UNKNOWN_SIGNAL: 'UNKNOWN_SIGNAL',
  /** The signal was executed already. */
  SIGNAL_ALREADY_EXECUTED: 'SIGNAL_ALREADY_EXECUTED',
  /** The signal was rejected or expired: it can no longer be acted on. */
  SIGNAL_NOT_PENDING: 'SIGNAL_NOT_PENDING',
  /** The symbol is not traded here. */
  UNKNOWN_SYMBOL: 'UNKNOWN_SYMBOL',
  /** The symbol has no market price yet. */
  NO_MARKET_PRICE: 'NO_MARKET_PRICE',
  /** Quantity not positive or not a multiple of the symbol's lot size. */
  INVALID_QUANTITY: 'INVALID_QUANTITY',
  /** Limit price missing, not positive or not a multiple of the tick size. */
  INVALID_PRICE: 'INVALID_PRICE',
  /** Not enough available balance for the margin the order needs. */
  INSUFFICIENT_BALANCE: 'INSUFFICIENT_BALANCE',
  /** The order would flip a position or fights an open order on the other side. */
  POSITION_CONFLICT: 'POSITION_CONFLICT',
  /** No order with that id. */
  UNKNOWN_ORDER: 'UNKNOWN_ORDER',
  /** The order is filled, cancelled or rejected already. */
  ORDER_NOT_OPEN: 'ORDER_NOT_OPEN',
  /** No open position in that symbol. */
  UNKNOWN_POSITION: 'UNKNOWN_POSITION',
  /** Orders closing the whole position are already working. */
  POSITION_ALREADY_CLOSING: 'POSITION_ALREADY_CLOSING',
} as const;
export type CommandErrorCode = (typeof CommandErrorCode)[keyof typeof CommandErrorCode];

/** A command refused for a reason the caller can act on. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly code: CommandErrorCode,
    message: string,
  ) {
    super(message);
  }
}
