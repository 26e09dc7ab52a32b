// Validates rendered manifests. Input: a JSON file {"objects": [...], "adapterConfig": {...} | null}.
// Every object is checked against its API type from kubernetes-models (core Kubernetes), @kubernetes-models/keda
// or @kubernetes-models/prometheus-operator (both generated from the projects' CRDs): types, enums, formats,
// required fields. Those validators ignore unknown fields, so the KEDA ScaledObject, the ServiceMonitor and the
// prometheus-adapter configuration are also checked against strict schemas (schemas/*.json) where an unknown field
// is an error; core Kubernetes objects get their strict unknown-field check from the Kubernetes API model in the
// Java test. Prints one JSON line per problem and exits 1 if there is any.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Ajv from "ajv";

const here = dirname(fileURLToPath(import.meta.url));
const input = JSON.parse(readFileSync(process.argv[2], "utf8"));
const ajv = new Ajv({ allErrors: true, strict: true });
const strict = {
  "keda.sh/v1alpha1/ScaledObject": ajv.compile(JSON.parse(readFileSync(join(here, "schemas/scaledobject.json"), "utf8"))),
  "monitoring.coreos.com/v1/ServiceMonitor": ajv.compile(JSON.parse(readFileSync(join(here, "schemas/servicemonitor.json"), "utf8"))),
};
const adapter = ajv.compile(JSON.parse(readFileSync(join(here, "schemas/adapter-config.json"), "utf8")));

function modulePath(apiVersion, kind) {
  if (apiVersion === "keda.sh/v1alpha1") return `@kubernetes-models/keda/keda.sh/v1alpha1/${kind}`;
  if (apiVersion === "monitoring.coreos.com/v1") return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

const problems = [];
const report = (where, message) => problems.push({ where, message });
for (const [i, obj] of input.objects.entries()) {
  const where = `${obj?.kind ?? "?"}/${obj?.metadata?.name ?? "?"} (document ${i})`;
  if (!obj || typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
    report(where, "no apiVersion/kind");
    continue;
  }
  let Model;
  try {
    Model = (await import(modulePath(obj.apiVersion, obj.kind)))[obj.kind];
  } catch (e) {
    report(where, `no API type ${obj.apiVersion} ${obj.kind} known to the validator`);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    report(where, e.message);
  }
  const s = strict[`${obj.apiVersion}/${obj.kind}`];
  if (s && !s(obj)) for (const err of s.errors) report(where, `${err.instancePath || "/"} ${err.message}${err.params?.additionalProperty ? `: '${err.params.additionalProperty}'` : ""}`);
}
if (input.adapterConfig != null && !adapter(input.adapterConfig)) {
  for (const err of adapter.errors) report("prometheus-adapter config.yaml", `${err.instancePath || "/"} ${err.message}${err.params?.additionalProperty ? `: '${err.params.additionalProperty}'` : ""}`);
}
for (const p of problems) console.log(JSON.stringify(p));
process.exit(problems.length ? 1 : 0);
