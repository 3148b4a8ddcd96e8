import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { loadConfig } from "../src/config.js";
import { EXIT_MARGIN_MS } from "../src/lifecycle.js";

const K8S_DIR = fileURLToPath(new URL("../deploy/k8s/", import.meta.url));

type Manifest = Record<string, any>;

function loadManifests(): Manifest[] {
  const manifests: Manifest[] = [];
  for (const name of readdirSync(K8S_DIR).filter((file) => file.endsWith(".yaml")).sort()) {
    for (const document of parseAllDocuments(readFileSync(K8S_DIR + name, "utf8"))) {
      assert.deepEqual(document.errors, [], `${name} is not valid YAML`);
      manifests.push(document.toJS() as Manifest);
    }
  }
  return manifests;
}

function findKind(manifests: Manifest[], kind: string): Manifest {
  const found = manifests.filter((manifest) => manifest.kind === kind);
  assert.equal(found.length, 1, `expected one ${kind} in deploy/k8s`);
  return structuredClone(found[0]!);
}

/** Resolves the container's drain settings the way `herald serve` would: its literal HERALD_* env over the defaults. */
function drainSettings(container: Manifest): { delayMs: number; timeoutMs: number; port: number } {
  const env: Record<string, string> = {};
  for (const entry of container.env ?? []) {
    // Values from secrets and fields are not known here; none of them is a drain setting.
    if (typeof entry.value === "string" && entry.name.startsWith("HERALD_")) {
      env[entry.name] = entry.value;
    }
  }
  const config = loadConfig({ env });
  return { delayMs: config.drain.delayMs, timeoutMs: config.drain.timeoutMs, port: config.port };
}

/** Lists every way the Deployment fails to give a drain the time and the signals it needs. */
function checkDeployment(deployment: Manifest): string[] {
  const problems: string[] = [];
  const pod = deployment.spec.template.spec;
  const container = pod.containers.find((entry: Manifest) => entry.name === "herald");
  if (!container) {
    return ["no container named herald"];
  }
  const { delayMs, timeoutMs, port } = drainSettings(container);
  const preStopMs = (container.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000;
  // Kubernetes counts the grace period from the start of the preStop hook, and sends SIGTERM after it.
  const neededMs = preStopMs + delayMs + timeoutMs + EXIT_MARGIN_MS;
  const graceMs = (pod.terminationGracePeriodSeconds ?? 30) * 1000;
  if (graceMs < neededMs) {
    problems.push(`terminationGracePeriodSeconds ${graceMs / 1000} is below ${neededMs / 1000}`);
  }
  if (preStopMs === 0) {
    problems.push("no preStop sleep");
  }

  const containerPort = container.ports?.find((entry: Manifest) => entry.containerPort === port);
  if (!containerPort) {
    problems.push(`no container port ${port}, the port herald listens on`);
  }
  const probePorts = new Set([port, containerPort?.name].filter((value) => value !== undefined));
  const readiness = container.readinessProbe?.httpGet;
  if (readiness?.path !== "/readyz" || !probePorts.has(readiness?.port)) {
    problems.push("readinessProbe is not GET /readyz on the herald port");
  }
  const liveness = container.livenessProbe?.httpGet;
  if (liveness?.path !== "/healthz" || !probePorts.has(liveness?.port)) {
    problems.push("livenessProbe is not GET /healthz on the herald port");
  }
  // The kubelet must see /readyz fail before draining starts, so the endpoint leaves the Service first.
  const probe = container.readinessProbe ?? {};
  const noticeMs = (probe.periodSeconds ?? 10) * (probe.failureThreshold ?? 3) * 1000;
  if (noticeMs > delayMs) {
    problems.push(`readiness takes up to ${noticeMs / 1000} s to fail, longer than the drain delay of ${delayMs / 1000} s`);
  }
  return problems;
}

function setEnv(deployment: Manifest, name: string, value: string | undefined): void {
  const container = deployment.spec.template.spec.containers[0];
  container.env = container.env.filter((entry: Manifest) => entry.name !== name);
  if (value !== undefined) {
    container.env.push({ name, value });
  }
}

describe("deploy/k8s", () => {
  const manifests = loadManifests();

  test("deployment gives the drain enough time", () => {
    assert.deepEqual(checkDeployment(findKind(manifests, "Deployment")), []);
  });

  test("grace check uses the drain env", () => {
    const deployment = findKind(manifests, "Deployment");
    setEnv(deployment, "HERALD_DRAIN_TIMEOUT_MS", "600000");
    assert.deepEqual(checkDeployment(deployment), ["terminationGracePeriodSeconds 140 is below 615"]);
  });

  test("grace check falls back to defaults", () => {
    const deployment = findKind(manifests, "Deployment");
    setEnv(deployment, "HERALD_DRAIN_TIMEOUT_MS", undefined);
    setEnv(deployment, "HERALD_DRAIN_DELAY_MS", undefined);
    deployment.spec.template.spec.terminationGracePeriodSeconds = 100;
    // Defaults: delay 0, timeout 120 s; with the 5 s preStop and the 5 s exit margin, 130 s are needed.
    const problems = checkDeployment(deployment);
    assert.ok(problems.includes("terminationGracePeriodSeconds 100 is below 130"), problems.join("; "));
    assert.ok(problems.some((problem) => problem.startsWith("readiness takes up to 2 s")), problems.join("; "));
  });

  test("grace check counts the preStop sleep", () => {
    const deployment = findKind(manifests, "Deployment");
    deployment.spec.template.spec.containers[0].lifecycle.preStop.sleep.seconds = 20;
    assert.deepEqual(checkDeployment(deployment), ["terminationGracePeriodSeconds 140 is below 150"]);
  });

  test("probe check rejects swapped paths", () => {
    const deployment = findKind(manifests, "Deployment");
    const container = deployment.spec.template.spec.containers[0];
    container.readinessProbe.httpGet.path = "/healthz";
    container.livenessProbe.httpGet.path = "/readyz";
    assert.deepEqual(checkDeployment(deployment), [
      "readinessProbe is not GET /readyz on the herald port",
      "livenessProbe is not GET /healthz on the herald port",
    ]);
  });

  test("service routes to the herald pods", () => {
    const deployment = findKind(manifests, "Deployment");
    const service = findKind(manifests, "Service");
    const labels = deployment.spec.template.metadata.labels;
    for (const [key, value] of Object.entries(service.spec.selector)) {
      assert.equal(labels[key], value, `pod label ${key}`);
    }
    assert.deepEqual(deployment.spec.selector.matchLabels, service.spec.selector);
    const portNames = deployment.spec.template.spec.containers[0].ports.map((entry: Manifest) => entry.name);
    for (const port of service.spec.ports) {
      assert.ok(portNames.includes(port.targetPort), `targetPort ${port.targetPort} is no container port`);
    }
  });
});
