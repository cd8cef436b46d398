/** Every way a request of the SDK can fail, as a class a caller can test with `instanceof`. */

export class TradeSyncError extends Error {
  override readonly name: string = 'TradeSyncError';
}

/** No reply within the request's timeout (after its retries). */
export class RequestTimeoutError extends TradeSyncError {
  override readonly name = 'RequestTimeoutError';
  constructor(readonly requestType: string, readonly timeoutMs: number) {
    super(`${requestType}: no reply within ${timeoutMs} ms`);
  }
}

/** The socket closed while the request was in flight (and it was not retried). */
export class ConnectionLostError extends TradeSyncError {
  override readonly name = 'ConnectionLostError';
  constructor(readonly requestType: string) {
    super(`${requestType}: the connection was lost before a reply`);
  }
}

/** The server answered with an `error` (or a failed `command_result`). */
export class ServerError extends TradeSyncError {
  override readonly name = 'ServerError';
  constructor(readonly code: string, message: string, readonly requestType: string) {
    super(`${requestType}: ${code}: ${message}`);
  }
}

/** The client was disconnected for good (`disconnect()`), or gave up reconnecting. */
export class ClientClosedError extends TradeSyncError {
  override readonly name = 'ClientClosedError';
  constructor(requestType: string) {
    super(`${requestType}: the client is closed`);
  }
}
