/** The shape every Herald server factory returns, so tests run them in-process on port 0. */
export interface HeraldServer {
  /** Listens on `port` (0 for any free one); resolves with the port it got. */
  start(port: number, host?: string): Promise<number>;
  /** Closes every connection and releases what the server holds; the broker is not closed. */
  stop(): Promise<void>;
}
