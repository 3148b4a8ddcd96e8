/** Samples of one scrape, keyed by `name{label="value",...}` with labels sorted by name. */
export type Samples = Map<string, number>;

/** GETs /metrics and parses the Prometheus text format into samples. */
export async function scrape(base: string, headers: Record<string, string> = {}): Promise<Samples> {
  const response = await fetch(`${base}/metrics`, { headers });
  if (response.status !== 200) {
    throw new Error(`GET /metrics returned ${response.status}: ${await response.text()}`);
  }
  return parseSamples(await response.text());
}

export function parseSamples(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) {
      continue;
    }
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) {
      throw new Error(`unparsable metrics line: ${line}`);
    }
    const labels = [...(match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map(
      ([, name, value]) => [name!, value!] as const,
    );
    samples.set(sampleKey(match[1]!, Object.fromEntries(labels)), Number(match[3]));
  }
  return samples;
}

export function sampleKey(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.keys(labels)
    .sort()
    .map((label) => `${label}="${labels[label]}"`);
  return parts.length === 0 ? name : `${name}{${parts.join(",")}}`;
}

/** The value of one sample; 0 when the series does not exist yet. */
export function sample(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  return samples.get(sampleKey(name, labels)) ?? 0;
}
