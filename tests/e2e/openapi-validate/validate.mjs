// validate.mjs FILE — exit 0 when FILE is a valid OpenAPI 3.0 document, else print every
// error the validator found and exit 1. @seriousme/openapi-schema-validator checks the
// document against the official OpenAPI JSON schema for its declared version and
// resolves every $ref.
import { Validator } from "@seriousme/openapi-schema-validator";
import { readFileSync } from "node:fs";

const file = process.argv[2];
const doc = JSON.parse(readFileSync(file, "utf8"));
const v = new Validator();
const res = await v.validate(doc);
if (v.version !== "3.0") {
  console.error(`${file}: validated as OpenAPI ${v.version}, expected 3.0`);
  process.exit(1);
}
if (!res.valid) {
  console.error(`${file}: not valid OpenAPI ${v.version}:`);
  console.error(JSON.stringify(res.errors, null, 2));
  process.exit(1);
}
console.log(`${file}: valid OpenAPI ${v.version}`);
