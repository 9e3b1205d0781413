// redactStoreUri: passwords in user info (also ones a URL parser would choke on) and in
// `…password=` parameters become ***; URIs without secrets are unchanged.
import { describe, expect, it } from "vitest";
import { redactStoreUri } from "../../src/store/redact.js";

describe("redactStoreUri", () => {
  it("hides the password of the user info and of password parameters", () => {
    const cases: [string, string][] = [
      ["postgres://user:secret@host/db", "postgres://user:***@host/db"],
      ["postgresql://user:secret@host:5433/db?sslmode=require", "postgresql://user:***@host:5433/db?sslmode=require"],
      ["postgres://user:p@ss@host/db", "postgres://user:***@host/db"],
      ["postgres://user:pa/ss@host/db", "postgres://user:***@host/db"],
      ["postgres://user:100%@host/db", "postgres://user:***@host/db"],
      ["postgres://:secret@host/db", "postgres://:***@host/db"],
      ["postgres://user@host/db?password=secret&sslmode=require", "postgres://user@host/db?password=***&sslmode=require"],
      ["postgres://host/db?sslmode=require&sslpassword=secret", "postgres://host/db?sslmode=require&sslpassword=***"],
      ["postgres://host/db?PASSWORD=secret#frag", "postgres://host/db?PASSWORD=***#frag"],
    ];
    for (const [uri, shown] of cases) expect(redactStoreUri(uri), uri).toBe(shown);
  });

  it("leaves URIs without secrets as they are", () => {
    for (const uri of [
      "sqlite:./data/tierkv.db",
      "memory:",
      "fs:/srv/ldk",
      "postgres://user@host:5432/db",
      "postgres://host:5432/db?sslrootcert=/etc/ca.pem",
      "grpcs://b.example:50052?ca=ca.pem&token_file=/run/token",
    ]) {
      expect(redactStoreUri(uri)).toBe(uri);
    }
  });
});
