// Validates every object of a rendered Helm chart (a multi-document YAML on stdin,
// or JSON: one array of objects) against Kubernetes' schemas, for issue 17's chart
// tests. Usage: node validate-k8s.mjs NODE_MODULES_DIR < objects.json
// Each object's apiVersion/kind picks a model class from kubernetes-models,
// @kubernetes-models/cert-manager or @kubernetes-models/prometheus-operator, and the
// model's validate() checks it. An object whose kind no package knows is an error:
// nothing passes unchecked. Prints one line per object; exits 1 if any failed.
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const nm = process.argv[2];
if (!nm) {
  console.error("usage: node validate-k8s.mjs NODE_MODULES_DIR < objects.json");
  process.exit(2);
}
const packages = [
  "kubernetes-models",
  "@kubernetes-models/cert-manager",
  "@kubernetes-models/prometheus-operator",
];

async function modelFor(apiVersion, kind) {
  for (const pkg of packages) {
    const file = join(nm, pkg, apiVersion, "index.js");
    if (!existsSync(file)) continue;
    const mod = await import(pathToFileURL(file).href);
    if (typeof mod[kind] === "function") return { pkg, Model: mod[kind] };
  }
  return null;
}

const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const obj of objects) {
  const name = `${obj.apiVersion}/${obj.kind} ${obj.metadata && obj.metadata.name}`;
  const found = obj.apiVersion && obj.kind ? await modelFor(obj.apiVersion, obj.kind) : null;
  if (!found) {
    console.log(`FAIL ${name}: no validator knows this kind`);
    failed++;
    continue;
  }
  try {
    new found.Model(obj).validate();
    console.log(`ok   ${name} (${found.pkg})`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message.replace(/\s+/g, " ")}`);
    failed++;
  }
}
console.log(`${objects.length - failed} valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
