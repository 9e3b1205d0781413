// Unit tests of the pieces of authentication: the identities file (its errors name the entry),
// the role matrix, the Authenticator's header handling and reload, and AuthorizedStore's scoping
// over a MemoryStore (who may name other stores, mirror revisions, list every store).
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { PeerCertificate } from "node:tls";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { Authenticator } from "../../src/auth/authenticator.js";
import { AuthorizedStore } from "../../src/auth/authorized-store.js";
import { addToken, hashToken, Identities, listIdentities, removeIdentity } from "../../src/auth/identities-file.js";
import { allows, OPEN_PRINCIPAL, ROLES, type Principal, type Role } from "../../src/auth/principal.js";
import { silentLogger } from "../../src/log.js";
import { MemoryStore } from "../../src/store/memory.js";
import type { KeyRef, KeyVersion } from "../../src/store/types.js";
import { allKeys, expectCode, paths } from "../support/auth.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

afterAll(() => removeTempDirs());

const HASH = hashToken("tkv_example");
const write = (dir: string, content: unknown, name = "identities.json"): string => {
  const path = join(dir, name);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
};
const good = { name: "first", tokenSha256: HASH, store: "alice", roles: ["write"] };

describe("the identities file", () => {
  const dir = tempDir();

  const errors: Array<[string, unknown, RegExp]> = [
    ["an unknown key", { ...good, colour: "blue" }, /identities\[1\]: unknown key "colour"/],
    ["a misspelt key", { tokenSha256: HASH, store: "alice", role: ["write"] }, /identities\[1\]: unknown key "role"/],
    ["an unknown role", { ...good, roles: ["write", "superuser"] }, /identities\[1\]: "roles" must be a non-empty list of read, write, admin, replicate/],
    ["no roles", { ...good, roles: [] }, /identities\[1\]: "roles" must be a non-empty list/],
    ["roles as a string", { ...good, roles: "write" }, /identities\[1\]: "roles" must be a non-empty list/],
    ["a hash in capitals", { ...good, tokenSha256: HASH.toUpperCase() }, /identities\[1\]: "tokenSha256" must be 64 lowercase hex digits/],
    ["a short hash", { ...good, tokenSha256: HASH.slice(1) }, /identities\[1\]: "tokenSha256" must be 64 lowercase hex digits/],
    ["the token instead of its hash", { ...good, tokenSha256: "tkv_example" }, /identities\[1\]: "tokenSha256" must be 64 lowercase hex digits/],
    ["neither hash nor subject", { store: "alice", roles: ["write"] }, /identities\[1\]: needs "tokenSha256" or "mtlsSubject"/],
    ["no store", { tokenSha256: HASH, roles: ["write"] }, /identities\[1\]: "store" must be a non-empty string/],
    ["an empty store", { ...good, store: "" }, /identities\[1\]: "store" must be a non-empty string/],
    ["a negative quota", { ...good, maxKeys: -1 }, /identities\[1\]: "maxKeys" must be a non-negative whole number/],
    ["a fractional quota", { ...good, maxBytes: 1.5 }, /identities\[1\]: "maxBytes" must be a non-negative whole number/],
    ["a store cap that is not a number", { ...good, maxStores: "2" }, /identities\[1\]: "maxStores" must be a non-negative whole number/],
    ["an entry that is not an object", "alice", /identities\[1\]: expected an object/],
  ];
  for (const [what, entry, message] of errors) {
    it(`names the entry with ${what}`, () => {
      const path = write(dir, { identities: [{ ...good, tokenSha256: hashToken("other") }, entry] });
      expect(() => Identities.load(path)).toThrow(message);
      expect(() => Identities.load(path)).toThrow(path);
    });
  }

  it("names the file when it is not JSON or not the expected shape", () => {
    const broken = write(dir, '{"identities": [', "broken.json");
    expect(() => Identities.load(broken)).toThrow(new RegExp(`^${broken}: not JSON`));
    const list = write(dir, [good], "list.json");
    expect(() => Identities.load(list)).toThrow(`${list}: expected {"identities": [...]}`);
  });

  it("finds principals by token and by certificate subject", () => {
    const path = write(dir, {
      identities: [
        { ...good, maxKeys: 10, maxBytes: 1000 },
        { tokenSha256: hashToken("tkv_second"), store: "bob", roles: ["read", "admin"] },
        { mtlsSubject: "ops", store: "ops", roles: ["admin"] },
        { tokenSha256: hashToken("tkv_third"), store: "carol", roles: ["write"], maxStores: 0 },
      ],
    });
    const identities = Identities.load(path);
    const first = identities.byToken("tkv_example")!;
    expect(first).toMatchObject({ name: "first", storeId: "alice", quota: { maxKeys: 10, maxBytes: 1000 } });
    expect([...first.roles]).toEqual(["write"]);
    const second = identities.byToken("tkv_second")!;
    expect(second.name).toBe(`${path}#1`); // no name: the entry's place, never the token
    expect(second.storeId).toBe("bob");
    expect(second.quota).toBeUndefined();
    expect(identities.byCertificateSubject("ops")).toMatchObject({ name: "ops", storeId: "ops" });
    // A store cap alone is a quota of its own (0 there is a limit of zero), replacing the default.
    expect(identities.byToken("tkv_third")!.quota).toEqual({ maxStores: 0 });
    expect(identities.byToken("tkv_unknown")).toBeUndefined();
    expect(identities.byToken(HASH)).toBeUndefined(); // the hash itself is no credential
    expect(identities.byCertificateSubject("alice")).toBeUndefined();
  });

  it("addToken appends a hashed entry with an id and the time, owner-readable only, and returns the token once", () => {
    const path = join(dir, "added.json");
    const before = Date.now();
    const first = addToken(path, { store: "alice", roles: ["write"], name: "alice" });
    const second = addToken(path, { store: "bob", roles: ["read"], maxKeys: 5 });
    expect(first.token).not.toBe(second.token);
    expect(first.id).toMatch(/^[0-9a-f]{16}$/);
    expect(first.id).not.toBe(second.id);
    const content = readFileSync(path, "utf8");
    expect(content).not.toContain(first.token);
    expect(content).not.toContain(second.token);
    const { identities } = JSON.parse(content) as { identities: Array<{ created: string }> };
    expect(identities).toEqual([
      { id: first.id, created: expect.any(String), store: "alice", roles: ["write"], name: "alice", tokenSha256: hashToken(first.token) },
      { id: second.id, created: expect.any(String), store: "bob", roles: ["read"], maxKeys: 5, tokenSha256: hashToken(second.token) },
    ]);
    expect(Date.parse(identities[0]!.created)).toBeGreaterThanOrEqual(before - 1000);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(Identities.load(path).byToken(second.token)?.storeId).toBe("bob");
  });

  it("ids: written ones must be well-formed and unique; files from before ids load, duplicates included, with stable derived ids", () => {
    const twice = write(dir, { identities: [good, good, { ...good, name: "other" }] }, "legacy.json");
    expect(Identities.load(twice).byToken("tkv_example")?.storeId).toBe("alice");
    const ids = listIdentities(twice).map((entry) => entry.id);
    expect(ids[0]).toBe(ids[1]); // identical entries: either one is the same to remove
    expect(ids[2]).not.toBe(ids[0]);
    expect(JSON.stringify(listIdentities(twice))).not.toContain(HASH);
    removeIdentity(twice, ids[2]!);
    expect(listIdentities(twice).map((entry) => entry.id)).toEqual([ids[0], ids[1]]);
    expect(() => removeIdentity(twice, "nope")).toThrow(/has no entry with id "nope"/);

    const duplicate = write(dir, { identities: [{ ...good, id: "a1" }, { ...good, id: "a1" }] }, "duplicate-ids.json");
    expect(() => Identities.load(duplicate)).toThrow(/two entries have the id "a1"/);
    for (const [key, value, message] of [["id", "a b", /"id" must be/], ["id", 7, /"id" must be/], ["created", "yesterday", /"created" must be/]] as const) {
      const bad = write(dir, { identities: [{ ...good, [key]: value }] }, "bad-id.json");
      expect(() => Identities.load(bad)).toThrow(message);
    }
  });

  it("addToken refuses a bad entry or a broken file and leaves the file as it was", () => {
    const path = join(dir, "guarded.json");
    addToken(path, { store: "alice", roles: ["write"] });
    const before = readFileSync(path, "utf8");
    expect(() => addToken(path, { store: "", roles: ["write"] })).toThrow(/"store" must be a non-empty string/);
    expect(() => addToken(path, { store: "bob", roles: [] })).toThrow(/"roles"/);
    expect(readFileSync(path, "utf8")).toBe(before);
    const broken = write(dir, "not json", "broken-for-add.json");
    expect(() => addToken(broken, { store: "bob", roles: ["write"] })).toThrow(/not JSON/);
    expect(readFileSync(broken, "utf8")).toBe("not json");
  });
});

const principal = (storeId: string, ...roles: Role[]): Principal => ({ name: `${storeId}:${roles.join("+")}`, storeId, roles: new Set(roles) });

describe("allows: the role matrix", () => {
  const expected: Record<string, Record<Role, boolean>> = {
    read: { read: true, write: false, admin: false, replicate: false },
    write: { read: true, write: true, admin: false, replicate: false },
    admin: { read: true, write: false, admin: true, replicate: false },
    replicate: { read: true, write: true, admin: false, replicate: true },
    "(none)": { read: false, write: false, admin: false, replicate: false },
  };
  for (const [held, rights] of Object.entries(expected)) {
    it(`a ${held} principal`, () => {
      const who = held === "(none)" ? principal("x") : principal("x", held as Role);
      for (const role of ROLES) expect(allows(who, role), `${held} → ${role}`).toBe(rights[role]);
    });
  }
  it("roles add up, and the open principal may do everything", () => {
    const both = principal("x", "read", "admin");
    expect(ROLES.filter((role) => allows(both, role))).toEqual(["read", "admin"]);
    expect(ROLES.every((role) => allows(OPEN_PRINCIPAL, role))).toBe(true);
    expect(OPEN_PRINCIPAL.storeId).toBe("default");
  });
});

describe("the authenticator", () => {
  const dir = tempDir();
  const tokensFile = write(dir, { identities: [good, { mtlsSubject: "ops", store: "ops", roles: ["admin"] }] });

  it("reads the bearer token from the header, case-insensitively, and refuses anything else", async () => {
    const auth = await Authenticator.open({ modes: ["tokens"], tokensFile }, silentLogger());
    expect((await auth.authenticate({ authorization: "Bearer tkv_example" })).storeId).toBe("alice");
    expect((await auth.authenticate({ authorization: "bearer   tkv_example" })).storeId).toBe("alice");
    expect(await expectCode(auth.authenticate({ authorization: "Bearer tkv_other" }), "unauthenticated")).toMatch(/unknown token/);
    for (const header of ["Basic x", "tkv_example", "Bearer", "Bearer tkv_example extra", "Token tkv_example"]) {
      expect(await expectCode(auth.authenticate({ authorization: header }), "unauthenticated")).toMatch(/not "Bearer <token>"/);
    }
    expect(await expectCode(auth.authenticate({}), "unauthenticated")).toMatch(/missing credentials/);
    expect(await expectCode(auth.authenticate({ authorization: "" }), "unauthenticated")).toMatch(/missing credentials/);
    // a certificate is no credential unless mtls is a mode
    const peerCertificate = { subject: { CN: "ops" } } as unknown as PeerCertificate;
    await expectCode(auth.authenticate({ peerCertificate }), "unauthenticated");
  });

  it("needs --tokens-file for tokens, and says so", async () => {
    await expect(Authenticator.open({ modes: ["tokens"] }, silentLogger())).rejects.toThrow("--auth tokens needs --tokens-file");
    await expect(Authenticator.open({ modes: ["tokens"], tokensFile: join(dir, "missing.json") }, silentLogger())).rejects.toThrow(/missing\.json/);
  });

  it("open mode answers the open principal; a bad token is still refused", async () => {
    const auth = await Authenticator.open({ modes: ["none"] }, silentLogger());
    expect(await auth.authenticate({})).toBe(OPEN_PRINCIPAL);
    await expectCode(auth.authenticate({ authorization: "Bearer tkv_example" }), "unauthenticated");
  });

  it("mtls: the first CN names the store; the identities file may give roles", async () => {
    const auth = await Authenticator.open({ modes: ["mtls"], tokensFile }, silentLogger());
    const cert = (subject: unknown, subjectaltname?: string): PeerCertificate =>
      ({ subject, ...(subjectaltname !== undefined && { subjectaltname }) }) as unknown as PeerCertificate;
    const carol = await auth.authenticate({ peerCertificate: cert({ CN: "carol" }) });
    expect({ storeId: carol.storeId, roles: [...carol.roles] }).toEqual({ storeId: "carol", roles: ["write"] });
    expect((await auth.authenticate({ peerCertificate: cert({ CN: ["first", "second"] }) })).storeId).toBe("first");
    const ops = await auth.authenticate({ peerCertificate: cert({ CN: "ops" }) });
    expect({ storeId: ops.storeId, roles: [...ops.roles] }).toEqual({ storeId: "ops", roles: ["admin"] });
    expect((await auth.authenticate({ peerCertificate: cert({ O: "x" }, "DNS:node-1.example, DNS:other") })).storeId).toBe("node-1.example");
    await expectCode(auth.authenticate({ peerCertificate: cert({ O: "x" }) }), "unauthenticated");
    await expectCode(auth.authenticate({ peerCertificate: {} as PeerCertificate }), "unauthenticated");
  });

  it("reload swaps in a good file and keeps the old identities when the new file is broken", async () => {
    const path = write(dir, { identities: [good] }, "reloaded.json");
    const auth = await Authenticator.open({ modes: ["tokens"], tokensFile: path }, silentLogger());
    write(dir, { identities: [{ ...good, tokenSha256: hashToken("tkv_new") }] }, "reloaded.json");
    expect(await auth.reload()).toBe(true);
    expect((await auth.authenticate({ authorization: "Bearer tkv_new" })).storeId).toBe("alice");
    await expectCode(auth.authenticate({ authorization: "Bearer tkv_example" }), "unauthenticated");
    write(dir, { identities: [{ ...good, roles: ["root"] }] }, "reloaded.json");
    expect(await auth.reload()).toBe(false);
    expect((await auth.authenticate({ authorization: "Bearer tkv_new" })).storeId).toBe("alice");
  });
});

describe("AuthorizedStore over a MemoryStore", () => {
  let inner: MemoryStore;
  const ref = (key: string, storeId?: string): KeyRef => ({ ...(storeId !== undefined && { storeId }), primaryNamespace: "ns", secondaryNamespace: "", key });
  const everything = (): Promise<KeyVersion[]> => allKeys(inner, { allStores: true }, 100);
  const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString("utf8");

  beforeEach(async () => {
    inner = new MemoryStore();
    await inner.write(ref("k", "alice"), Buffer.from("alice's"), { version: 10n });
    await inner.write(ref("k", "bob"), Buffer.from("bob's"), { version: 10n });
  });

  it("a write principal works in its own store only, and cannot mirror revisions or make exact copies", async () => {
    const alice = new AuthorizedStore(inner, principal("alice", "write"));
    expect(text(await alice.read(ref("k")))).toBe("alice's");
    expect(await alice.write(ref("new"), Buffer.from("mine"), { version: 11n })).toBe("applied");
    expect(text(await inner.read(ref("new", "alice")))).toBe("mine");
    await expectCode(inner.read(ref("new")), "not-found"); // not the default store
    const before = await everything();

    await expectCode(alice.write(ref("k"), Buffer.from("exact"), { exact: true, version: 1n }), "permission-denied");
    await expectCode(alice.write(ref("k"), Buffer.from("revised"), { revision: 99n }), "permission-denied");
    await expectCode(alice.remove(ref("k"), { exact: true }), "permission-denied");
    await expectCode(alice.txn({ checks: [], operations: [{ ...ref("k"), kind: "write", value: Buffer.from("x"), revision: 5n }] }), "permission-denied");
    await expectCode(alice.write(ref("k", "bob"), Buffer.from("alice was here")), "permission-denied");
    await expectCode(alice.remove(ref("k", "bob")), "permission-denied");
    await expectCode(alice.read(ref("k", "bob")), "permission-denied");
    await expectCode(alice.list({ storeId: "bob", primaryNamespace: "ns", secondaryNamespace: "" }), "permission-denied");
    await expectCode(alice.listAllKeys({ allStores: true }), "permission-denied");
    await expectCode(alice.listAllKeys({ storeId: "bob" }), "permission-denied");
    await expectCode(alice.txn({ checks: [{ ...ref("k", "bob"), expect: "present" }], operations: [{ ...ref("k"), kind: "remove" }] }), "permission-denied");
    expect(await everything()).toEqual(before);
    expect(paths(await allKeys(alice))).toEqual(["alice/ns//k", "alice/ns//new"]);
  });

  it("a read principal reads and lists its store and changes nothing", async () => {
    const reader = new AuthorizedStore(inner, principal("alice", "read"));
    expect(text(await reader.read(ref("k")))).toBe("alice's");
    expect(await reader.list({ primaryNamespace: "ns", secondaryNamespace: "" })).toEqual(["k"]);
    const before = await everything();
    await expectCode(reader.write(ref("k"), Buffer.from("x")), "permission-denied");
    await expectCode(reader.remove(ref("k")), "permission-denied");
    await expectCode(reader.txn({ checks: [], operations: [{ ...ref("k"), kind: "remove" }] }), "permission-denied");
    expect(await everything()).toEqual(before);
  });

  it("a replicate principal names other stores, mirrors revisions and makes exact copies", async () => {
    const replica = new AuthorizedStore(inner, principal("instance-a", "replicate"));
    expect(text(await replica.read(ref("k", "bob")))).toBe("bob's");
    expect(await replica.write(ref("k", "bob"), Buffer.from("mirrored"), { version: 20n, revision: 7n })).toBe("applied");
    expect(await inner.readVersioned(ref("k", "bob"))).toMatchObject({ version: 20n, revision: 7n });
    expect(await replica.write(ref("k", "alice"), Buffer.from("repaired"), { exact: true, version: 3n, revision: 2n })).toBe("applied");
    expect(await inner.readVersioned(ref("k", "alice"))).toMatchObject({ version: 3n, revision: 2n });
    expect(await replica.remove(ref("k", "bob"))).toBe("applied");
    await expectCode(inner.read(ref("k", "bob")), "not-found");
    expect(paths(await allKeys(replica, { allStores: true }))).toEqual(["alice/ns//k"]);
    // its own store is the default for unnamed references
    await replica.write(ref("own"), Buffer.from("own"));
    expect(text(await inner.read(ref("own", "instance-a")))).toBe("own");
  });

  it("an admin lists every store and reads any, but writes only its own (with write) and never another's", async () => {
    const admin = new AuthorizedStore(inner, principal("ops", "admin", "write"));
    expect(paths(await allKeys(admin, { allStores: true }))).toEqual(["alice/ns//k", "bob/ns//k"]);
    expect(text(await admin.read(ref("k", "bob")))).toBe("bob's");
    expect(await admin.list({ storeId: "alice", primaryNamespace: "ns", secondaryNamespace: "" })).toEqual(["k"]);
    expect(paths(await allKeys(admin, { storeId: "bob" }))).toEqual(["bob/ns//k"]);
    const before = await everything();
    await expectCode(admin.write(ref("k", "bob"), Buffer.from("ops was here")), "permission-denied");
    await expectCode(admin.remove(ref("k", "alice")), "permission-denied");
    await expectCode(admin.txn({ checks: [], operations: [{ ...ref("k", "bob"), kind: "remove" }] }), "permission-denied");
    await expectCode(admin.write(ref("k", "bob"), Buffer.from("exact"), { exact: true }), "permission-denied");
    expect(await everything()).toEqual(before);
    expect(await admin.write(ref("own"), Buffer.from("ops'"))).toBe("applied");
    expect(text(await inner.read(ref("own", "ops")))).toBe("ops'");

    // admin alone: reads and lists everything, writes nothing
    const auditor = new AuthorizedStore(inner, principal("ops", "admin"));
    expect(paths(await allKeys(auditor, { allStores: true }))).toEqual(["alice/ns//k", "bob/ns//k", "ops/ns//own"]);
    expect(text(await auditor.read(ref("k", "alice")))).toBe("alice's");
    await expectCode(auditor.write(ref("own"), Buffer.from("x")), "permission-denied");
  });
});
