//! Progress of a long operator command on stderr, in the style of `tierkv resync`: a one-line bar
//! redrawn in place on a terminal, a plain line every 2 s otherwise (logs, CI, pipes).

/** Milliseconds between progress lines when the stream is not a terminal. */
export const LOG_INTERVAL_MS = 2_000;
/** Milliseconds between redraws of the bar on a terminal. */
const REDRAW_INTERVAL_MS = 100;
/** Erases the rest of the line after a redraw, in case the bar got shorter. */
const CLEAR_TO_END = "\x1b[K";
export const BAR_WIDTH = 30;

/** `[#######.......]  45% 2250/5000 keys · detail`, as `tierkv resync` draws it. */
export function progressBar(done: number, total: number, unit: string, detail: string): string {
  const fraction = total === 0 ? 1 : Math.min(1, done / total);
  const filled = Math.round(fraction * BAR_WIDTH);
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  const tail = detail === "" ? "" : ` · ${detail}`;
  return `[${"#".repeat(filled)}${".".repeat(BAR_WIDTH - filled)}] ${percent} ${done}/${total} ${unit}${tail}`;
}

/** `label: 2250/5000 keys, detail`: the line logged instead of the bar. */
export function progressLine(label: string, done: number, total: number, unit: string, detail: string): string {
  return `${label}: ${done}/${total} ${unit}${detail === "" ? "" : `, ${detail}`}`;
}

export interface ProgressStream {
  readonly isTTY?: boolean;
  write(chunk: string): unknown;
}

export interface ProgressOptions {
  /** Prefix of the logged lines (`migrate`, `migrate verify`). */
  readonly label: string;
  /** What is counted (`keys`). */
  readonly unit: string;
  /** stderr unless given. */
  readonly stream?: ProgressStream;
  /** Between logged lines when not a terminal (LOG_INTERVAL_MS unless given). */
  readonly intervalMs?: number;
  /** Called right before each logged line (and each redraw), e.g. to save a checkpoint. */
  readonly onTick?: () => void;
}

/**
 * Reports `done/total` of one phase. `set` records the latest counts; a timer draws them (the bar
 * every 100 ms on a terminal, a line every `intervalMs` otherwise), so a stalled phase still
 * reports. `finish` stops the timer and, on a terminal, leaves the final bar on its own line.
 */
export class Progress {
  private done = 0;
  private total = 0;
  private detail = "";
  private readonly timer: NodeJS.Timeout;
  private readonly stream: ProgressStream;
  private readonly terminal: boolean;
  private finished = false;

  constructor(private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.terminal = this.stream.isTTY === true;
    const interval = this.terminal ? REDRAW_INTERVAL_MS : (options.intervalMs ?? LOG_INTERVAL_MS);
    this.timer = setInterval(() => this.draw(), interval);
    this.timer.unref();
  }

  set(done: number, total: number, detail = ""): void {
    this.done = done;
    this.total = total;
    this.detail = detail;
  }

  private draw(): void {
    this.options.onTick?.();
    const { label, unit } = this.options;
    if (this.terminal) this.stream.write(`\r${progressBar(this.done, this.total, unit, this.detail)}${CLEAR_TO_END}`);
    else this.stream.write(`${progressLine(label, this.done, this.total, unit, this.detail)}\n`);
  }

  /** Stops reporting; on a terminal the last bar stays, ended by a newline. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearInterval(this.timer);
    if (this.terminal) this.stream.write(`\r${progressBar(this.done, this.total, this.options.unit, this.detail)}${CLEAR_TO_END}\n`);
  }
}
