import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { ApiKeys } from "../auth/api-keys.js";
import { bearerCredential } from "../auth/secrets.js";
import { checkPublish, type Authenticator, type Identity } from "../auth/identity.js";
import { validateChannel } from "../channel.js";
import type { Config } from "../config.js";
import { protocolError, toHeraldError } from "../errors.js";
import type { Hub } from "../hub.js";
import { historyLimit } from "../history-limit.js";
import { checkIdempotencyKey, MAX_IDEMPOTENCY_KEY_LENGTH } from "../idempotency-key.js";
import { encodePublicationData } from "../publication-data.js";
import { crossSiteReason, rejectCrossSite } from "./cors.js";
import { remoteAddress } from "./listener.js";
import { isLoopback, readJsonBody, requireJsonContentType, sendJson } from "./respond.js";

const publishItem = z.object({
  channel: z.string(),
  data: z.unknown(),
  idempotencyKey: z.string().min(1).max(MAX_IDEMPOTENCY_KEY_LENGTH).optional(),
});

const publishBatch = z.object({ items: z.array(z.unknown()) });

type PublishItem = { channel: string; data: string; idempotencyKey: string | undefined };

/** The backend API: publish, publish_batch and history, behind an API key. */
export class PublishApi {
  private readonly keys: ApiKeys;

  constructor(
    private readonly config: Config,
    private readonly hub: Hub,
    private readonly auth: Authenticator,
  ) {
    this.keys = new ApiKeys(config.apiKeys);
  }

  /**
   * Throws unless the request carries a configured API key, or comes from
   * loopback when none is configured. Without a key, requests a web page
   * may have sent are rejected too.
   */
  authorize(req: IncomingMessage): void {
    this.keys.verify(req.headers.authorization, remoteAddress(req));
    if (this.config.apiKeys.length === 0) {
      rejectCrossSite(req, this.config.cors.allowedOrigins);
    }
  }

  /**
   * Sorts a publish request into backend or client. A backend (an API key,
   * or loopback while no key is configured) gets undefined. Anything else
   * is a client: a Bearer value that is not an API key is its connection
   * token, and no Authorization header makes it anonymous.
   */
  async authorizePublisher(req: IncomingMessage): Promise<Identity | undefined> {
    const header = req.headers.authorization;
    const given = header === undefined || header === "" ? undefined : bearerCredential(header);
    if (header !== undefined && header !== "" && given === undefined) {
      throw protocolError("unauthorized", "Send credentials as Authorization: Bearer <key or token>.");
    }
    // Without a key, loopback is a backend, except for a web page that may not act as one: that is a client.
    const backend = this.keys.configured
      ? given !== undefined && this.keys.matches(given)
      : isLoopback(remoteAddress(req)) && crossSiteReason(req, this.config.cors.allowedOrigins) === undefined;
    if (backend) {
      return undefined;
    }
    if (given !== undefined && !this.auth.enabled) {
      // With no token key configured a Bearer value can only be an API key.
      throw protocolError("unauthorized", "The API key is not valid.");
    }
    return this.auth.authenticate(given);
  }

  /** Publishes one item; a client (not a backend) must be allowed to publish on its channel. */
  async publish(req: IncomingMessage, res: ServerResponse, client?: Identity): Promise<void> {
    requireJsonContentType(req);
    const body = await readJsonBody(req, this.config.limits.maxBodyBytes);
    const header = req.headers["idempotency-key"];
    const item = parseItem(body, typeof header === "string" ? header : undefined);
    if (client !== undefined) {
      validateChannel(item.channel);
      const namespace = this.hub.namespaceOf(item.channel);
      if (client.anonymous && !namespace.clientPublish) {
        // Most likely a backend that forgot its key, so say what is missing rather than what is forbidden.
        throw protocolError("unauthorized", "Send the API key as Authorization: Bearer <key>, or a client token that may publish here.");
      }
      checkPublish(client, namespace, item.channel);
    }
    const publication = await this.hub.publish(item.channel, item.data, item.idempotencyKey);
    sendJson(res, 200, { channel: publication.channel, epoch: publication.epoch, offset: publication.offset });
  }

  async publishBatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    requireJsonContentType(req);
    const body = await readJsonBody(req, this.config.limits.maxBodyBytes);
    const parsed = publishBatch.safeParse(body);
    if (!parsed.success) {
      throw protocolError("invalid_command", 'The body must be {"items": [{"channel": …, "data": …}, …]}.');
    }
    const raw = parsed.data.items;
    if (raw.length > this.config.limits.maxBatchItems) {
      throw protocolError("payload_too_large", `The batch has ${raw.length} items; the maximum is ${this.config.limits.maxBatchItems}.`);
    }
    // Every item is validated before any is published, so an invalid batch publishes nothing.
    const items = raw.map((entry, index) => {
      try {
        return parseItem(entry, undefined);
      } catch (error) {
        const herald = toHeraldError(error);
        throw protocolError(herald.code, `Item ${index}: ${herald.message}`);
      }
    });

    // Every item goes to the broker at once, so that on Redis they share one
    // pipeline instead of waiting a round trip each. The calls start in item
    // order and the broker stores them in that order, so items of one channel
    // get increasing offsets in batch order.
    const outcomes = await Promise.allSettled(items.map((item) => this.hub.publish(item.channel, item.data, item.idempotencyKey)));
    let failed = false;
    const results = outcomes.map((outcome, index) => {
      if (outcome.status === "fulfilled") {
        const publication = outcome.value;
        return { channel: publication.channel, epoch: publication.epoch, offset: publication.offset };
      }
      failed = true;
      return { channel: items[index]!.channel, error: toHeraldError(outcome.reason).toJSON() };
    });
    sendJson(res, failed ? 503 : 200, { results });
  }

  async history(url: URL, res: ServerResponse): Promise<void> {
    const channel = url.searchParams.get("channel");
    if (channel === null) {
      throw protocolError("missing_channel", "The channel query parameter is required.");
    }
    const since = parseCount(url.searchParams.get("since"), "since") ?? 0;
    const namespace = this.hub.namespaceOf(channel);
    const limit = historyLimit(parseCount(url.searchParams.get("limit"), "limit"), namespace.historySize, "bad_request");
    const history = await this.hub.history(channel, since, limit);
    const publications = history.publications.map((publication) => ({
      offset: publication.offset,
      data: JSON.parse(publication.data) as unknown,
    }));
    sendJson(res, 200, { channel, epoch: history.epoch, top: history.top, earliest: history.earliest, publications });
  }
}

function parseItem(body: unknown, headerKey: string | undefined): PublishItem {
  const parsed = publishItem.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` (${issue.path.join(".")}: ${issue.message})` : "";
    throw protocolError("invalid_command", `The body must be {"channel": string, "data": any JSON}${where}.`);
  }
  if (!("data" in (body as object)) || parsed.data.data === undefined) {
    throw protocolError("invalid_command", 'The body has no "data" field.');
  }
  const idempotencyKey = checkIdempotencyKey(parsed.data.idempotencyKey ?? headerKey);
  // Checked here, not only in the hub, so that a batch with a bad name publishes none of its items.
  const channel = validateChannel(parsed.data.channel);
  return { channel, data: encodePublicationData(parsed.data.data), idempotencyKey };
}

/** Parses a non-negative integer query parameter up to 2^53-1; undefined when absent. */
function parseCount(text: string | null, name: string): number | undefined {
  if (text === null || text === "") {
    return undefined;
  }
  if (!/^\d{1,16}$/.test(text) || Number(text) > Number.MAX_SAFE_INTEGER) {
    throw protocolError(
      "bad_request",
      `The ${name} query parameter must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}; got ${JSON.stringify(text.slice(0, 32))}.`,
    );
  }
  return Number(text);
}
