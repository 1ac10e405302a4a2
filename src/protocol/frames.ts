// Streaming frame scanner: walks a byte stream by message header (type byte + int32 length) and forwards
// byte ranges without copying; only frames a caller asks to inspect are assembled and handed over.
// Reference: https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS

/** What to do with a frame, decided from its header alone. */
export const enum Action {
  /** Forward the bytes untouched; the body is never looked at. */
  Pass = 0,
  /** Swallow the frame. */
  Drop = 1,
  /** Assemble the body and call `inspect`, which decides whether the frame is forwarded. */
  Inspect = 2,
  /** Stop before this frame: `feed` returns the unconsumed bytes, header included, for a later feed. */
  Stall = 3,
  /**
   * Call `peek` with the first bytes of the body only (at most the scanner's peek size), then forward the
   * whole frame as it streams: a large message is never assembled just to read a name at its start.
   */
  Peek = 4,
  /** Internal: collecting a Peek frame's first bytes across chunks. */
  PeekCollect = 5,
}

export interface FrameSink {
  /** Called once per frame at its header. `length` includes the 4 length bytes, as on the wire. */
  classify(type: number, length: number): Action;
  /**
   * Called with the complete body of an Inspect frame; return true to forward the frame. `own` is the whole
   * frame in a buffer of its own (the sink may keep it) when the scanner had to assemble it, else null
   * (then `body` is a view into the input chunk).
   */
  inspect(type: number, body: Buffer, own: Buffer | null): boolean;
  /** Called for a Peek frame with up to the scanner's peek size of its first body bytes, before any of it is written. */
  peek?(type: number, head: Buffer, bodyLength: number): void;
  /** Receives forwarded bytes, in order. Buffers may be views into the input chunk: do not keep them past the call unless written. */
  write(bytes: Buffer): void;
  /** Optional: called for a Drop frame once everything before it has been written (to write a substitute in order). */
  dropped?(type: number, length: number): void;
  /** Optional: called before and after each chunk, so a sink can batch its writes (socket cork/uncork). */
  begin?(): void;
  end?(): void;
}

/** Raised when a frame header is impossible (length < 4 or beyond the limit): the stream is out of sync. */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

export class FrameScanner {
  private readonly header = Buffer.allocUnsafe(5);
  private headerLen = 0;
  /** Body bytes of the current frame not seen yet. */
  private remaining = 0;
  private action: Action = Action.Pass;
  /** Type of the Inspect frame being assembled. */
  private type = 0;
  /** An Inspect frame that spans chunks, assembled once (header and body in one buffer). */
  private frame: Buffer | null = null;
  private bodyLen = 0;
  /** A Peek frame's header and first bytes, collected across chunks. */
  private peekHead: Buffer | null = null;
  private peekWant = 0;
  private peekBodyLength = 0;

  /**
   * @param maxFrame largest frame accepted at all (length field), checked before anything is allocated.
   * @param maxInspect largest body assembled for inspection.
   * @param peekSize most body bytes handed to `peek` for a Peek frame.
   */
  constructor(
    private readonly maxFrame: number,
    private readonly maxInspect: number,
    private readonly peekSize = 1024,
  ) {}

  /** True when no frame is partly read: the stream may change hands here. */
  get atBoundary(): boolean {
    return this.headerLen === 0 && this.remaining === 0;
  }

  /** Scans `chunk`; returns null when all of it was consumed, or the bytes from a stalled frame on. */
  feed(chunk: Buffer, sink: FrameSink): Buffer | null {
    const len = chunk.length;
    let pos = 0;
    // Start of the pending pass-through range in this chunk, or -1.
    let passStart = -1;
    const flush = (end: number): void => {
      if (passStart >= 0 && end > passStart) sink.write(chunk.subarray(passStart, end));
      passStart = -1;
    };

    while (pos < len) {
      if (this.remaining > 0) {
        // Continue a frame whose header was seen in an earlier chunk (or earlier in this one).
        if (this.action === Action.PeekCollect) {
          const got = this.peekHead!.length - 5 - this.peekWant;
          const n = Math.min(this.peekWant, len - pos);
          chunk.copy(this.peekHead!, 5 + got, pos, pos + n);
          this.peekWant -= n;
          pos += n;
          this.remaining -= n;
          if (this.peekWant === 0) {
            const head = this.peekHead!;
            this.peekHead = null;
            sink.peek!(this.type, head.subarray(5), this.peekBodyLength);
            sink.write(head);
            this.action = Action.Pass;
          }
          continue;
        }
        const take = Math.min(this.remaining, len - pos);
        if (this.action === Action.Pass) {
          if (passStart < 0) passStart = pos;
        } else if (this.action === Action.Inspect) {
          chunk.copy(this.frame!, 5 + this.bodyLen, pos, pos + take);
          this.bodyLen += take;
        }
        pos += take;
        this.remaining -= take;
        if (this.remaining === 0 && this.action === Action.Inspect) {
          flush(pos);
          const frame = this.frame!;
          this.frame = null;
          if (sink.inspect(this.type, frame.subarray(5), frame)) sink.write(frame);
        }
        continue;
      }

      // At a header. Fast path: the whole header is in this chunk.
      let type: number;
      let length: number;
      const frameStart = pos;
      if (this.headerLen === 0 && len - pos >= 5) {
        type = chunk[pos];
        length = chunk.readUInt32BE(pos + 1);
        pos += 5;
      } else {
        // Header split across chunks: what came before it is complete and can go out now.
        flush(frameStart);
        const take = Math.min(5 - this.headerLen, len - pos);
        chunk.copy(this.header, this.headerLen, pos, pos + take);
        this.headerLen += take;
        pos += take;
        if (this.headerLen < 5) break;
        this.headerLen = 0;
        type = this.header[0];
        length = this.header.readUInt32BE(1);
      }
      if (length < 4 || length > this.maxFrame) {
        flush(frameStart);
        throw new FrameError(`invalid message length ${length} for message type 0x${type.toString(16)}`);
      }
      const bodyLength = length - 4;
      const headerSplit = frameStart + 5 !== pos; // header bytes came partly from an earlier chunk
      const action = sink.classify(type, length);
      if (action === Action.Stall) {
        flush(frameStart);
        if (!headerSplit) return chunk.subarray(frameStart);
        const head = Buffer.allocUnsafe(5);
        head[0] = type;
        head.writeUInt32BE(length, 1);
        return Buffer.concat([head, chunk.subarray(pos)]);
      }
      if (action === Action.Inspect && bodyLength > this.maxInspect) {
        flush(frameStart);
        throw new FrameError(`message type 0x${type.toString(16)} of ${length} bytes exceeds the ${this.maxInspect}-byte limit`);
      }

      if (action === Action.Pass) {
        if (headerSplit) {
          flush(frameStart);
          this.header.writeUInt8(type, 0);
          this.header.writeUInt32BE(length, 1);
          sink.write(Buffer.from(this.header));
        } else if (passStart < 0) {
          passStart = frameStart;
        }
        this.action = Action.Pass;
        this.remaining = bodyLength;
        continue;
      }

      flush(frameStart);
      if (action === Action.Peek) {
        const want = Math.min(this.peekSize, bodyLength);
        this.type = type;
        if (!headerSplit && len - pos >= want) {
          // The first bytes are here: peek, then the frame streams through like a Pass frame.
          sink.peek!(type, chunk.subarray(pos, pos + want), bodyLength);
          passStart = frameStart;
          this.action = Action.Pass;
          this.remaining = bodyLength;
          continue;
        }
        // Collect header and first bytes in a small buffer of their own (written, so not reused).
        const head = Buffer.allocUnsafe(5 + want);
        head[0] = type;
        head.writeUInt32BE(length, 1);
        this.peekHead = head;
        this.peekWant = want;
        this.peekBodyLength = bodyLength;
        this.remaining = bodyLength;
        this.action = Action.PeekCollect;
        if (want === 0) {
          this.peekHead = null;
          sink.peek!(type, head.subarray(5), bodyLength);
          sink.write(head);
          this.action = Action.Pass;
        }
        continue;
      }
      if (action === Action.Drop) {
        sink.dropped?.(type, length);
        this.action = Action.Drop;
        this.remaining = bodyLength;
        continue;
      }

      // Inspect.
      this.type = type;
      if (!headerSplit && len - pos >= bodyLength) {
        const body = chunk.subarray(pos, pos + bodyLength);
        pos += bodyLength;
        // The sink may change state inside inspect(); later frames are classified afresh.
        if (sink.inspect(type, body, null)) passStart = frameStart;
        continue;
      }
      // Assembled once: header and body in one buffer, so forwarding it needs no second copy.
      const frame = Buffer.allocUnsafe(5 + bodyLength);
      frame[0] = type;
      frame.writeUInt32BE(length, 1);
      this.action = Action.Inspect;
      this.frame = frame;
      this.bodyLen = 0;
      this.remaining = bodyLength;
      if (bodyLength === 0) {
        this.frame = null;
        if (sink.inspect(type, frame.subarray(5), frame)) sink.write(frame);
      }
    }
    flush(pos);
    return null;
  }
}
