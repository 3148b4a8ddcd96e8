import { z } from "zod";
import { protocolError } from "../errors.js";
import { MAX_HISTORY_LIMIT } from "../history-limit.js";

/** Request ids are integers or short strings chosen by the client. */
const requestId = z.union([z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), z.string().min(1).max(64)]);

const position = z.object({
  epoch: z.string().min(1).max(32),
  offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});

const channel = z.string();

export const commandSchema = z.discriminatedUnion("type", [
  z.object({ id: requestId, type: z.literal("connect"), token: z.string().max(16_384).optional(), session: z.string().max(128).optional() }),
  z.object({ id: requestId, type: z.literal("subscribe"), channel, since: position.optional() }),
  z.object({ id: requestId, type: z.literal("unsubscribe"), channel }),
  z.object({ id: requestId, type: z.literal("publish"), channel, data: z.unknown() }),
  z.object({
    id: requestId,
    type: z.literal("history"),
    channel,
    since: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    limit: z.number().int().min(0).max(MAX_HISTORY_LIMIT).optional(),
  }),
  z.object({ id: requestId, type: z.literal("presence"), channel }),
  z.object({ id: requestId, type: z.literal("refresh"), token: z.string().max(16_384) }),
  z.object({ id: requestId, type: z.literal("ping") }),
]);

export type Command = z.infer<typeof commandSchema>;
export type RequestId = z.infer<typeof requestId>;

const COMMAND_TYPES = new Set(commandSchema.options.map((option) => option.shape.type.value));

/**
 * Parses one client frame. Returns the command, or throws a protocol error
 * that carries the request id when the frame had a usable one, so the
 * client can match the error to its request.
 */
export function parseCommand(text: string): Command {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw protocolError("invalid_json", "The frame is not valid JSON.");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw protocolError("invalid_command", "A command must be a JSON object.");
  }
  const record = value as Record<string, unknown>;
  const id = requestId.safeParse(record.id);
  if (record.id === undefined) {
    throw protocolError("missing_id", "The command has no id; every command needs a request id.");
  }
  if (!id.success) {
    throw protocolError("invalid_command", "The id must be a non-negative integer or a string of 1 to 64 characters.");
  }
  if (record.type === undefined) {
    throw new CommandError(id.data, protocolError("invalid_command", 'The command has no "type"; give one of the command types in docs/protocol.md.'));
  }
  if (typeof record.type !== "string" || !COMMAND_TYPES.has(record.type as Command["type"])) {
    throw new CommandError(id.data, protocolError("unknown_command", `Unknown command type ${JSON.stringify(String(record.type).slice(0, 32))}.`));
  }
  const parsed = commandSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? `${issue.path.join(".") || "command"}: ${issue.message}` : "invalid";
    throw new CommandError(id.data, protocolError("invalid_command", `Invalid ${record.type} command (${where}).`));
  }
  return parsed.data;
}

/** A protocol error tied to the request id of the command that caused it. */
export class CommandError extends Error {
  constructor(
    readonly id: RequestId,
    readonly error: ReturnType<typeof protocolError>,
  ) {
    super(error.message);
  }
}

/** Encodes a successful reply. */
export function replyFrame(id: RequestId, result: unknown): string {
  return JSON.stringify({ id, type: "reply", result });
}

/** Encodes an error reply; id is omitted when the frame had none. */
export function errorFrame(id: RequestId | undefined, error: { toJSON(): unknown }): string {
  return JSON.stringify(id === undefined ? { type: "error", error } : { id, type: "error", error });
}
