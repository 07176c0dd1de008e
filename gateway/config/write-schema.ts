// Writes resources/schemas/labgate.schema.json from the zod schema, so editors can check labgate.yaml.
import { writeFileSync } from "node:fs";
import { z } from "zod";
import { configSchema } from "./schema.ts";

export function configJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any" }),
    $id: "https://labgate.dev/schemas/labgate.schema.json",
    title: "labgate configuration (labgate.yaml)",
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = new URL("../../resources/schemas/labgate.schema.json", import.meta.url);
  writeFileSync(out, JSON.stringify(configJsonSchema(), null, 2) + "\n");
  console.log(`wrote ${out.pathname}`);
}
