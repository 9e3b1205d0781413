// The published package: `npm pack` makes a tarball that installs into an empty project, where
// `import { TierkvClient } from "tierkv/client"` type-checks with the repo's TypeScript and, run
// by node, writes and reads back a value through a real server.
import { execFileSync } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import { spawnServer, type ServerProcess } from "../support/process.js";
import { removeTempDirs, tempDir } from "../support/temp.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const TSC = join(REPO, "node_modules", "typescript", "bin", "tsc");

const CONSUMER = `import { TierkvClient } from "tierkv/client";

const [address, text] = process.argv.slice(2);
const kv = new TierkvClient({ address: address!, timeoutMs: 10_000 });
const ref = { primaryNamespace: "pkg", secondaryNamespace: "", key: "round_trip" };
const outcome: "applied" | "stale" = await kv.write(ref, new TextEncoder().encode(text));
const read: string = new TextDecoder().decode(await kv.read(ref));
// The package's types are real, not any: a call without a key does not compile.
// @ts-expect-error a KeyRef needs a key
await kv.read({ primaryNamespace: "pkg", secondaryNamespace: "" }).catch(() => undefined);
console.log(JSON.stringify({ outcome, read }));
await kv.close();
`;

let server: ServerProcess | undefined;
afterAll(async () => {
  await server?.kill("SIGKILL");
  removeTempDirs();
});

it("npm pack → npm install in an empty project → tierkv/client type-checks and round-trips a value", async () => {
  const packDir = tempDir("tierkv-pack-");
  // dist/ is built by the global setup; --ignore-scripts keeps `prepare` from building it again.
  execFileSync("npm", ["pack", "--ignore-scripts", "--silent", "--pack-destination", packDir], { cwd: REPO, stdio: "pipe" });
  const [tarball] = readdirSync(packDir).filter((name) => name.endsWith(".tgz"));
  expect(tarball).toBeDefined();

  const project = tempDir("tierkv-consumer-");
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  // From npm's cache when it can (the registry otherwise). --ignore-scripts: the client needs no
  // native module, so better-sqlite3 (a server dependency) need not be built. About 11 s here.
  execFileSync("npm", ["install", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund", "--silent", join(packDir, tarball!)], {
    cwd: project,
    stdio: "pipe",
  });
  writeFileSync(join(project, "main.ts"), CONSUMER);
  writeFileSync(
    join(project, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, outDir: "out", types: ["node"] },
      files: ["main.ts"],
    }),
  );
  execFileSync(process.execPath, [TSC, "-p", "tsconfig.json"], { cwd: project, stdio: "pipe" });

  server = await spawnServer(["--primary", "memory:"]);
  const output = execFileSync(process.execPath, [join(project, "out", "main.js"), server.address, "from the package"], {
    cwd: project,
    encoding: "utf8",
  });
  expect(JSON.parse(output)).toEqual({ outcome: "applied", read: "from the package" });
}, 120_000);
