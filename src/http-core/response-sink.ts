/**
 * The per-byte path of every ODB relay: an undici dispatch handler that writes a response body
 * into a Node writable (a client's ServerResponse, usually), pausing the upstream connection while
 * the writable is full. No intermediate stream, no copy.
 */
import type { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { OdbError } from '../core/errors.js';

export type ResponseHeaders = Record<string, string | string[] | undefined>;

/** What a caller decides and learns about one response. */
export interface ResponseSinkCallbacks {
  /**
   * Status and headers arrived (1xx responses are skipped). Return the writable that receives
   * the body, or undefined to discard it. Throwing aborts the request with that error.
   */
  onHead(statusCode: number, headers: ResponseHeaders, statusMessage: string): Writable | undefined;
  /**
   * Called exactly once: without an error after the whole body was written and the writable
   * ended; with one when anything failed (the writable, if any, was destroyed with it).
   */
  onDone(err: Error | undefined, bodyBytes: number): void;
  /**
   * Called once, when undici takes the request off its queue: put on a connection, or failed
   * before that. Also for a request abandoned with {@link ResponseSink.abort} while it waited.
   */
  onDequeued?(): void;
}

/** Thrown into the upstream request when the destination closed before the body ended. */
export class DestinationClosedError extends OdbError {
  constructor() {
    super('ODB_ERR_DESTINATION_CLOSED');
    this.name = 'DestinationClosedError';
  }
}

/** A dispatch handler streaming one response into the writable `onHead` returns. */
export class ResponseSink implements Dispatcher.DispatchHandler {
  readonly #callbacks: ResponseSinkCallbacks;
  #destination: Writable | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  #bytes = 0;
  #ended = false;
  #done = false;
  #leftQueue = false;
  /** Why {@link abort} gave up, told to undici should it start the request after that. */
  #abandonedWith: Error | undefined;

  constructor(callbacks: ResponseSinkCallbacks) {
    this.#callbacks = callbacks;
  }

  /** True once undici put the request on a connection. */
  get requestSent(): boolean {
    return this.#controller !== undefined;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#dequeued();
    this.#controller = controller;
    if (this.#done) controller.abort(this.#abandonedWith!);
  }

  /**
   * Gives up on the response: aborts it if under way and reports `err` now even if the request
   * is still waiting for a connection (undici then drops it when it gets that far).
   */
  abort(err: Error): void {
    if (this.#done) return;
    this.#abandonedWith = err;
    if (this.#destination && !this.#destination.destroyed) this.#destination.destroy();
    this.#controller?.abort(err);
    this.#finish(err);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: ResponseHeaders,
    statusMessage?: string,
  ): void {
    if (statusCode < 200) return;
    let destination: Writable | undefined;
    try {
      destination = this.#callbacks.onHead(statusCode, headers, statusMessage ?? '');
    } catch (err) {
      controller.abort(err as Error);
      return;
    }
    if (!destination) return;
    this.#destination = destination;
    if (destination.destroyed) {
      controller.abort(new DestinationClosedError());
      return;
    }
    destination.on('drain', this.#resume);
    destination.on('close', this.#closed);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#done) return;
    this.#bytes += chunk.length;
    if (this.#destination && !this.#destination.write(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    this.#dequeued();
    if (this.#done) return;
    const destination = this.#destination;
    if (!destination) return this.#finish(undefined);
    this.#ended = true;
    destination.end(() => this.#finish(undefined));
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#dequeued();
    // Destroyed without the error: it is reported through onDone, and an 'error' event on a
    // destination nobody listens to would crash the process.
    if (this.#destination && !this.#destination.destroyed) this.#destination.destroy();
    this.#finish(err);
  }

  #dequeued(): void {
    const callback = this.#callbacks.onDequeued;
    if (!callback || this.#leftQueue) return;
    this.#leftQueue = true;
    callback();
  }

  readonly #resume = (): void => {
    this.#controller?.resume();
  };

  readonly #closed = (): void => {
    if (this.#done) return;
    if (!this.#ended) {
      this.#controller?.abort(new DestinationClosedError());
    } else if (!this.#destination?.writableFinished) {
      // Ended but closed before every byte was flushed: the 'finish' callback will never come.
      this.#finish(new DestinationClosedError());
    }
  };

  #finish(err: Error | undefined): void {
    if (this.#done) return;
    this.#done = true;
    const destination = this.#destination;
    if (destination) {
      destination.off('drain', this.#resume);
      destination.off('close', this.#closed);
    }
    this.#callbacks.onDone(err, this.#bytes);
  }
}
