/** A position in one channel: the epoch of its history and the last offset handled. */
export interface StreamPosition {
  readonly epoch: string;
  readonly offset: number;
}

/**
 * The client's position in one channel. Every transport resumes from it,
 * and it drops an event whose offset it has already passed, which a
 * resume on another transport or node may send again.
 */
export class ChannelPosition {
  private current: StreamPosition | undefined;

  constructor(start?: StreamPosition) {
    this.current = start;
  }

  /** The last position handled; undefined until the server names one. */
  get position(): StreamPosition | undefined {
    return this.current;
  }

  /** Moves past an event and returns true, or returns false for an offset already passed. */
  advance(offset: number): boolean {
    if (this.current !== undefined && offset <= this.current.offset) {
      return false;
    }
    this.current = { epoch: this.current?.epoch ?? "", offset };
    return true;
  }

  /** Sets the position the server reports: a start, a resume or a gap. */
  moveTo(position: StreamPosition): void {
    this.current = { epoch: position.epoch, offset: position.offset };
  }
}
