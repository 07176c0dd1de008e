#!/usr/bin/env node
// Entry point of the `labgate` command. Node >= 22.18 runs the TypeScript sources, stripped
// beforehand when the build is there (prestripped.js).
// Plain JavaScript that any Node can parse: an older Node gets one line saying what to
// install instead of ERR_UNKNOWN_FILE_EXTENSION and a stack trace.
const [major, minor] = process.versions.node.split(".").map(Number);
// Type stripping without a flag: 22.18+ on the 22 line, 23.6+ after it.
const runsTypeScript = major > 23 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18);
if (!runsTypeScript) {
  process.stderr.write(
    `labgate needs Node.js >= 22.18 (this is v${process.versions.node}): install it from https://nodejs.org or with \`nvm install 22\`\n`,
  );
  process.exit(1);
}

// The sources are served from their stripped copies in dist/js (npm run build:js), so
// Node's TypeScript stripper never loads (see prestripped.js). LABGATE_JS_DIR names
// another folder for them, or "off" to let Node strip every file as it loads it.
const jsDir = process.env.LABGATE_JS_DIR;
if (jsDir !== "off") {
  const { usePrestripped } = await import("./prestripped.js");
  usePrestripped(jsDir || undefined);
}

const { main } = await import("../gateway/cli.ts");
let code;
try {
  code = await main(process.argv.slice(2));
} catch (err) {
  // main() reports the mistakes it knows in one line; anything else still gets one line,
  // and its stack only when asked for (LABGATE_LOG_LEVEL=debug).
  const debug = /^(debug|trace)$/i.test(process.env.LABGATE_LOG_LEVEL ?? "");
  process.stderr.write(`labgate: ${debug && err instanceof Error ? err.stack : err instanceof Error ? err.message : String(err)}\n`);
  code = 1;
}
process.exit(code);
