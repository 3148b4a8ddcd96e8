/**
 * Text of the event stream format (HTML Living Standard, "Server-sent
 * events"). Lines end in LF; the stream carries no byte order mark.
 */

/** A comment line: EventSource ignores it, but it keeps proxies and NATs from timing the stream out. */
export const HEARTBEAT = ":\n";

/** A comment line carrying `text`, which must not contain a line break. */
export function commentLine(text: string): string {
  return `: ${text}\n`;
}

/** Sets the client's reconnection delay, in ms. */
export function retryField(ms: number): string {
  return `retry: ${Math.round(ms)}\n\n`;
}

/**
 * Formats `text` as `data:` lines ending the event with a blank line.
 * JSON never contains a raw line break inside a string, but it may between
 * tokens; each such line gets its own `data:` field, which EventSource
 * joins back with LF, so the client parses the same JSON.
 */
export function dataField(text: string): string {
  if (!/[\r\n]/.test(text)) {
    return `data: ${text}\n\n`;
  }
  return `${text
    .split(/\r\n|\r|\n/)
    .map((line) => `data: ${line}\n`)
    .join("")}\n`;
}

/** Formats a whole event: optional `event:` name, optional `id:`, then the data. */
export function formatEvent(name: string | undefined, id: string | undefined, data: string): string {
  const nameLine = name === undefined ? "" : `event: ${name}\n`;
  const idLine = id === undefined ? "" : `id: ${id}\n`;
  return nameLine + idLine + dataField(data);
}
