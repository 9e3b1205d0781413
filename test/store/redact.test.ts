// redactStoreUri: every shape of a PostgreSQL password hidden, hosts, paths and file parameters kept.
import { describe, expect, it } from "vitest";
import { redactStoreUri } from "../../src/store/redact.js";

describe("redactStoreUri", () => {
  const cases: Array<[string, string]> = [
    ["postgres://kv:s3cretPW@db:5432/kv", "postgres://kv:***@db:5432/kv"],
    // Raw `@`, `/`, `:`, `%`, `?` and `#` in the password: the credentials end at the last `@` before the host.
    ["postgres://kv:p@ss@db:5432/kv", "postgres://kv:***@db:5432/kv"],
    ["postgres://kv:pa/ss@db/kv", "postgres://kv:***@db/kv"],
    ["postgres://kv:pa%ss%41@db/kv", "postgres://kv:***@db/kv"],
    ["postgres://kv:a:b@db/kv", "postgres://kv:***@db/kv"],
    ["postgresql://kv:p?x#y@db/kv?sslmode=require", "postgresql://kv:***@db/kv?sslmode=require"],
    ["postgres://kv:p@ss/w%rd@db/kv?application_name=a@b", "postgres://kv:***@db/kv?application_name=a@b"],
    ["postgres://kv:@db/kv", "postgres://kv:***@db/kv"],
    // Secret query parameters, whatever their place; file paths stay.
    ["postgres://kv@db/kv?password=s3cret&sslrootcert=/etc/ca.pem", "postgres://kv@db/kv?password=***&sslrootcert=/etc/ca.pem"],
    ["postgres://db/kv?sslmode=verify-full&sslpassword=k3y&sslkey=/k.pem", "postgres://db/kv?sslmode=verify-full&sslpassword=***&sslkey=/k.pem"],
    ["postgres://db/kv?PASSWORD=x", "postgres://db/kv?PASSWORD=***"],
    ["grpc://10.0.0.5:50051?token=abc&token_file=/run/secrets/t", "grpc://10.0.0.5:50051?token=***&token_file=/run/secrets/t"],
    // Nothing to hide.
    ["postgres://kv@db/kv", "postgres://kv@db/kv"],
    ["grpcs://h:1?ca=/ca.pem", "grpcs://h:1?ca=/ca.pem"],
    ["sqlite:/var/lib/tierkv/kv.db", "sqlite:/var/lib/tierkv/kv.db"],
    ["fs:./ldk", "fs:./ldk"],
    ["memory:", "memory:"],
  ];
  it.each(cases)("%s → %s", (uri, shown) => {
    expect(redactStoreUri(uri)).toBe(shown);
  });
});

describe("redactStoreUri, the shapes --print-config meets", () => {
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
