// The layers of src/, read from the `import … from "…"` lines of every file: no folder imports a
// folder of its own layer or of a higher one, so no two folders import each other and a newcomer
// can read the code top-down (README, "Layout").
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SRC = join(ROOT, "src");

/**
 * Bottom to top. A folder may import only folders of a LOWER layer; folders of one layer are
 * siblings that know nothing of each other. `base` is the files directly in src/ (limits,
 * host-port, log, tracing, version) plus the generated code in gen/; `index` is src/index.ts, the package's
 * entry, which re-exports from anywhere.
 */
const LAYERS: readonly (readonly string[])[] = [
  ["base"], //               limits.ts, host-port.ts, log.ts, tracing.ts, uri-query.ts, version.ts; gen/ (buf generate)
  ["store"], //              the KVStore contract, its errors and validation, one file per backend
  ["tier", "auth", "migrate", "watch"], // the tiered store; principals and authenticators; copying between stores; watchers of the change log
  ["service"], //            the one call pipeline every surface passes through (being built in parallel:
  //                         placed above what it runs on, below the surfaces; move it if it needs rpc/)
  ["rpc"], //                gRPC plumbing shared by server and client: service definition, status, trace context
  ["client"], //             TierkvClient, TierkvAdminClient
  ["remote"], //             a chained tierkv as a KVStore backend (over the client)
  ["follow"], //             a follower tailing a leader's changes (its leader opened as a remote store)
  ["server", "vss"], //      the surfaces: gRPC, Connect, gRPC-Web, admin, metrics; the VSS HTTP endpoint
  ["app"], //                wiring: store URIs → stores → tiered store, authenticators, servers
  ["cli"], //                the commands
  ["index"], //              the package's entry point
];

const RANK = new Map(LAYERS.flatMap((layer, rank) => layer.map((folder) => [folder, rank] as const)));

interface Import {
  readonly from: string;
  readonly to: string;
  readonly where: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** The folder (layer member) a path under the repository belongs to. */
function folderOf(path: string): string {
  const rel = relative(SRC, path);
  if (rel.startsWith("..")) return "base"; // gen/
  const parts = rel.split(sep);
  if (parts.length > 1) return parts[0]!;
  return parts[0] === "index.ts" ? "index" : "base";
}

/** Every relative `import`/`export … from "…"` (and dynamic `import("…")`) of every file under src/. */
function imports(): Import[] {
  const found: Import[] = [];
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, "utf8");
    const pattern = /^\s*(?:import|export)\b[^;]*?\bfrom\s*"([^"]+)"|^\s*import\s*"([^"]+)"|\bimport\(\s*"([^"]+)"\s*\)/gm;
    for (const match of text.matchAll(pattern)) {
      const specifier = match[1] ?? match[2] ?? match[3]!;
      if (!specifier.startsWith(".")) continue;
      const line = text.slice(0, match.index).split("\n").length;
      found.push({
        from: folderOf(file),
        to: folderOf(resolve(dirname(file), specifier)),
        where: `${relative(ROOT, file)}:${line} imports "${specifier}"`,
      });
    }
  }
  return found;
}

/** The folders on a cycle of the folder graph, each cycle once (Tarjan's strongly connected components). */
function folderCycles(edges: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (node: string): void => {
    index.set(node, index.size);
    low.set(node, index.get(node)!);
    stack.push(node);
    onStack.add(node);
    for (const next of edges.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1) cycles.push(component.sort());
    }
  };
  for (const node of edges.keys()) if (!index.has(node)) visit(node);
  return cycles;
}

describe("architecture", () => {
  const all = imports();
  const across = all.filter((i) => i.from !== i.to);

  it("finds the imports it checks", () => {
    expect(all.length).toBeGreaterThan(100);
    expect(across.some((i) => i.from === "cli" && i.to === "app")).toBe(true);
  });

  it("places every folder of src/ in a layer", () => {
    const folders = new Set(sourceFiles(SRC).map(folderOf));
    expect([...folders].filter((folder) => !RANK.has(folder))).toEqual([]);
  });

  it("has no cycle between folders", () => {
    const edges = new Map<string, Set<string>>();
    for (const { from, to } of across) edges.set(from, (edges.get(from) ?? new Set()).add(to));
    const cycles = folderCycles(edges).map((cycle) => {
      const members = new Set(cycle);
      const lines = across.filter((i) => members.has(i.from) && members.has(i.to)).map((i) => i.where);
      return `${cycle.join(" ⇄ ")}:\n  ${lines.join("\n  ")}`;
    });
    expect(cycles).toEqual([]);
  });

  it("never imports from its own layer's siblings or a higher layer", () => {
    const upward = across
      .filter((i) => (RANK.get(i.to) ?? Infinity) >= (RANK.get(i.from) ?? -Infinity))
      .map((i) => `${i.where} (${i.from} → ${i.to})`);
    expect(upward).toEqual([]);
  });
});
