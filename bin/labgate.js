#!/usr/bin/env node
// Entry point of the `labgate` command. Node >= 22.18 runs the TypeScript sources directly.
import { main } from "../gateway/cli.ts";

const code = await main(process.argv.slice(2));
process.exit(code);
