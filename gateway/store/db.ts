// Opens the labgate SQLite file (WAL) and brings its schema up to date.
import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { MIGRATIONS } from "./migrations.ts";

export type Db = Database.Database;

export function openDatabase(file: string): Db {
  if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file);
  // Pages freed by retention go back to the file system in small steps (PRAGMA incremental_vacuum,
  // store/retention.ts). SQLite lets auto_vacuum change only before the first table: a new file
  // gets it here; an older one keeps reusing its free pages (a VACUUM with the gateway stopped
  // switches it over, see README "Storage").
  if (file !== ":memory:" && (db.pragma("page_count", { simple: true }) as number) === 0) db.pragma("auto_vacuum = INCREMENTAL");
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 5000");
  // The WAL is reused from its start after each checkpoint; this truncates it back
  // after one that a long transaction made big (SQLite's default keeps it at its peak).
  db.pragma("journal_size_limit = 67108864");
  migrate(db);
  return db;
}

/** Applies every migration newer than the file's user_version, each in its own transaction. */
export function migrate(db: Db): number {
  const current = db.pragma("user_version", { simple: true }) as number;
  for (const m of MIGRATIONS) {
    if (m.version <= current) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    })();
  }
  return db.pragma("user_version", { simple: true }) as number;
}
