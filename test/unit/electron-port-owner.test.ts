// Attaching to a labgate on the port hands it the admin key: only when its listening socket
// is this OS user's. The /proc/net/tcp and lsof parsing from fixture text, the decision
// table, and the probe with injected facts (platform, uid, files, a command's output).
import { describe, expect, it } from "vitest";
import { decide, listenerUidsFromLsof, listenerUidsFromProcNet, ownerFromUids, portOwner, type OwnerProbe } from "../../electron/port-decision.ts";

// Port 4000 = 0x0FA0. Two LISTEN sockets on 4000 (uids 1000 on 127.0.0.1, 1001 on 0.0.0.0 elsewhere),
// an ESTABLISHED one on 4000 owned by uid 0 (not a listener), a listener on 8080 (0x1F90) owned by 0.
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0FA0 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 100 0 0 10 0
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 223456 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0FA0 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 323456 1 0000000000000000 20 4 30 10 -1
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0FA0 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 423456 1 0000000000000000 100 0 0 10 0
`;

const probe = (o: Partial<OwnerProbe> & { files?: Record<string, string>; lsof?: string }): OwnerProbe => ({
  platform: o.platform ?? "linux",
  uid: "uid" in o ? o.uid : 1000,
  readFile: async (p) => {
    const t = o.files?.[p];
    if (t === undefined) throw new Error(`ENOENT ${p}`);
    return t;
  },
  run: async (cmd, args) => {
    if (o.lsof === undefined) throw new Error(`${cmd}: not found`);
    expect(args).toEqual(["-nP", "-iTCP:4000", "-sTCP:LISTEN", "-Fu"]);
    return o.lsof;
  },
});

describe("whose socket listens on the port", () => {
  it("reads LISTEN sockets of that port only from /proc/net/tcp and tcp6", () => {
    expect(listenerUidsFromProcNet(TCP, 4000)).toEqual([1000]);
    expect(listenerUidsFromProcNet(TCP6, 4000)).toEqual([1001]);
    expect(listenerUidsFromProcNet(TCP, 8080)).toEqual([0]);
    expect(listenerUidsFromProcNet(TCP, 4001)).toEqual([]);
    expect(listenerUidsFromProcNet("", 4000)).toEqual([]);
  });

  it("reads uids from lsof's field output", () => {
    expect(listenerUidsFromLsof("p4242\nu501\nf12\np4243\nu502\nf13\n")).toEqual([501, 502]);
    expect(listenerUidsFromLsof("")).toEqual([]);
  });

  it("same user only when every listener is ours", () => {
    expect(ownerFromUids([1000], 1000, "x")).toEqual({ kind: "same-user" });
    expect(ownerFromUids([1000, 1001], 1000, "x")).toEqual({ kind: "other-user", uids: [1001] });
    expect(ownerFromUids([], 1000, "x").kind).toBe("unknown");
    expect(ownerFromUids([1000], undefined, "x").kind).toBe("unknown");
  });

  it("Linux: /proc; another user's listener on tcp6 makes it someone else's", async () => {
    expect(await portOwner(4000, probe({ files: { "/proc/net/tcp": TCP } }))).toEqual({ kind: "same-user" });
    expect(await portOwner(4000, probe({ files: { "/proc/net/tcp": TCP, "/proc/net/tcp6": TCP6 } }))).toEqual({ kind: "other-user", uids: [1001] });
    expect(await portOwner(4000, probe({ uid: 1001, files: { "/proc/net/tcp6": TCP6 } }))).toEqual({ kind: "same-user" });
  });

  it("macOS: lsof; it failing, or Windows without uids, is unknown", async () => {
    expect(await portOwner(4000, probe({ platform: "darwin", uid: 501, lsof: "p1\nu501\n" }))).toEqual({ kind: "same-user" });
    expect(await portOwner(4000, probe({ platform: "darwin", uid: 501, lsof: "p1\nu502\n" }))).toEqual({ kind: "other-user", uids: [502] });
    expect((await portOwner(4000, probe({ platform: "darwin", uid: 501 }))).kind).toBe("unknown");
    expect((await portOwner(4000, probe({ platform: "win32", uid: undefined, lsof: "p1\nu0\n" }))).kind).toBe("unknown");
  });
});

describe("attach only to this user's labgate", () => {
  const labgate = { kind: "labgate" as const, version: "0.3.0" };
  it("same user: attach", () => {
    expect(decide(4000, labgate, null, { kind: "same-user" })).toEqual({ action: "attach", port: 4000, version: "0.3.0" });
  });
  it("another user's: treated like another program (never attached), the next free port offered", () => {
    const d = decide(4000, labgate, 4001, { kind: "other-user", uids: [1001] });
    expect(d).toMatchObject({ action: "offer-next", port: 4000, nextFree: 4001, message: expect.stringContaining("another user") });
  });
  it("unknown: the user is asked (never attached silently)", () => {
    const d = decide(4000, labgate, 4001, { kind: "unknown", why: "lsof could not tell" });
    expect(d).toMatchObject({ action: "ask-attach", port: 4000, version: "0.3.0", nextFree: 4001, message: expect.stringContaining("lsof could not tell") });
    expect(decide(4000, labgate, null).action).toBe("ask-attach");
  });
});
