import type { PresenceEvent, Publication } from "../broker.js";

export type ParsedMessage =
  | { kind: "publication"; publication: Publication }
  | { kind: "presence"; event: PresenceEvent };

/**
 * Parses a message that the Lua scripts publish (see scripts.ts for the
 * format). Returns undefined for anything else.
 */
export function parseMessage(message: string): ParsedMessage | undefined {
  const fields: string[] = [];
  let start = 0;
  const count = message.startsWith("p\n") ? 5 : 2;
  for (let i = 0; i < count; i++) {
    const end = message.indexOf("\n", start);
    if (end === -1) {
      return undefined;
    }
    fields.push(message.slice(start, end));
    start = end + 1;
  }
  const rest = message.slice(start);

  if (fields[0] === "p") {
    const [, epoch, offset, time, channel] = fields as [string, string, string, string, string];
    return {
      kind: "publication",
      publication: { channel, epoch, offset: Number(offset), time: Number(time), data: rest },
    };
  }
  if (fields[0] === "j" || fields[0] === "l") {
    try {
      const entry = JSON.parse(rest) as PresenceEvent["entry"];
      return { kind: "presence", event: { type: fields[0] === "j" ? "join" : "leave", channel: fields[1]!, entry } };
    } catch {
      return undefined;
    }
  }
  return undefined;
}
