#!/usr/bin/env node
//! The `tierkv` command line: `serve`, and `get|put|rm|ls` against a running server.

import { Command, CommanderError, Option } from "commander";
import { readFileSync } from "node:fs";
import { addToken, listIdentities, removeIdentity } from "../auth/identities-file.js";
import { ROLES, type Role } from "../auth/principal.js";
import { DEFAULT_CALL_TIMEOUT_MS, DEFAULT_LISTEN } from "../limits.js";
import { StoreError } from "../store/errors.js";
import type { SnapshotRestoreOptions } from "./admin-commands.js";
import type { ClientSettings } from "./client-commands.js";
import { addSettingOptions, parsePositiveInteger, resolveSettings, SettingsError } from "./settings.js";

// A command loads only what it runs: the server and every store backend take most of a second to
// import, which `tierkv get` or `tierkv token list` should not pay.
const clientCommands = () => import("./client-commands.js");
const adminCommands = () => import("./admin-commands.js");

const program = new Command("tierkv")
  .description("A gRPC key-value store with primary, backup and ephemeral tiers (LDK's KVStore model).")
  // Usage errors (unknown flags, missing arguments) are one line and exit 2, like bad settings;
  // subcommands made after this inherit both.
  .configureOutput({ outputError: (message, write) => write(`tierkv: ${message.replace(/^error: /, "")}`) })
  .exitOverride((error: CommanderError) => process.exit(error.exitCode === 0 ? 0 : 2))
  .addOption(
    new Option("--server <host:port>", "server for get/put/rm/ls").env("TIERKV_SERVER").default(DEFAULT_LISTEN),
  )
  .addOption(new Option("--timeout <ms>", "deadline of each call in ms").env("TIERKV_TIMEOUT").default(String(DEFAULT_CALL_TIMEOUT_MS)))
  .addOption(new Option("--token-file <file>", "file whose first line is the bearer token (or set TIERKV_TOKEN)").env("TIERKV_TOKEN_FILE"))
  .addOption(new Option("--ca <file>", "PEM CA of the server's certificate: connect with TLS").env("TIERKV_CA"))
  .addOption(new Option("--cert <file>", "PEM client certificate for mutual TLS (with --key)").env("TIERKV_CERT"))
  .addOption(new Option("--key <file>", "PEM private key of --cert").env("TIERKV_KEY"));

function clientSettings(): ClientSettings {
  const options = program.opts<{ server: string; timeout: string; tokenFile?: string; ca?: string; cert?: string; key?: string }>();
  // A token comes from the environment or a file, never the command line (where ps shows it).
  const fromEnv = process.env["TIERKV_TOKEN"];
  const token =
    fromEnv !== undefined && fromEnv !== "" ? fromEnv : options.tokenFile === undefined ? undefined : readTokenFile(options.tokenFile);
  return {
    server: options.server,
    timeoutMs: parsePositiveInteger(options.timeout, "--timeout"),
    ...(token !== undefined && { token }),
    ...(options.ca !== undefined && { ca: options.ca }),
    ...(options.cert !== undefined && { cert: options.cert }),
    ...(options.key !== undefined && { key: options.key }),
  };
}

/** The first line of `--token-file`, trimmed; a missing or empty file is a settings error. */
function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new SettingsError(`--token-file ${path}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const token = text.split("\n")[0]!.trim();
  if (token === "") throw new SettingsError(`--token-file ${path}: its first line is empty; expected the bearer token`);
  return token;
}

const storeOption = (): Option =>
  new Option("--store <id>", "another store (tenant) than the token's own: roles admin (read) and replicate (read and write)");

/** Commands whose options come from a heavy module: completed just before they parse their arguments. */
const completeCommand: Record<string, (command: Command) => Promise<void>> = {
  async serve(command) {
    const { serve, SERVE_SETTINGS } = await import("./serve.js");
    addSettingOptions(command, SERVE_SETTINGS).action(async (options: Record<string, unknown>) => {
      await serve(resolveSettings(SERVE_SETTINGS, options, process.env));
    });
  },
  async migrate(command) {
    (await import("./migrate-command.js")).configureMigrateCommand(command);
  },
};
program.hook("preSubcommand", async (_program, command) => {
  await completeCommand[command.name()]?.(command);
});

program.command("serve").description("run the gRPC server until SIGINT/SIGTERM");

program
  .command("get")
  .description("write a value's raw bytes to stdout")
  .argument("<path>", "key, ns/key or ns/sub/key")
  .addOption(storeOption())
  .action(async (path: string, options: { store?: string }) => (await clientCommands()).get(clientSettings(), path, options.store));

program
  .command("put")
  .description("store a file's contents (stdin when FILE is absent or -)")
  .argument("<path>", "key, ns/key or ns/sub/key")
  .argument("[file]", "file to read the value from")
  .addOption(storeOption())
  .action(async (path: string, file: string | undefined, options: { store?: string }) =>
    (await clientCommands()).put(clientSettings(), path, file, options.store),
  );

program
  .command("rm")
  .description("remove a key (removing an absent key succeeds)")
  .argument("<path>", "key, ns/key or ns/sub/key")
  .option("--lazy", "let the server defer the deletion", false)
  .addOption(storeOption())
  .action(async (path: string, options: { lazy: boolean; store?: string }) =>
    (await clientCommands()).rm(clientSettings(), path, options.lazy, options.store),
  );

program
  .command("watch")
  .description("print one JSON line per change of the store (from now, or from --from SEQ) until interrupted")
  .argument("[namespace]", "only changes under ns or ns/sub")
  .option("--from <seq>", "the first sequence to print (inclusive; the kept history must still hold it)")
  .option("--values", "add each put's value, base64", false)
  .addOption(storeOption())
  .action(async (namespace: string | undefined, options: { from?: string; values: boolean; store?: string }) =>
    (await import("./watch-command.js")).watch(clientSettings(), namespace, options),
  );

program
  .command("ls")
  .description(
    "list every key of a namespace, walking all pages (newest first where the store can); with --namespaces, the namespaces instead",
  )
  .argument("[namespace]", "ns or ns/sub (the root namespace when absent); with --namespaces, a primary namespace")
  .option("--page-size <n>", "keys per page")
  .option("--namespaces", "list the primary namespaces, or the secondary ones under NAMESPACE (walks every key up to there)", false)
  .addOption(storeOption())
  .action(async (namespace: string | undefined, options: { pageSize?: string; namespaces: boolean; store?: string }) => {
    const { ls, lsNamespaces } = await clientCommands();
    const listOptions = {
      ...(options.pageSize !== undefined && { pageSize: parsePositiveInteger(options.pageSize, "--page-size") }),
      ...(options.store !== undefined && { store: options.store }),
    };
    const settings = clientSettings();
    return options.namespaces ? lsNamespaces(settings, namespace, listOptions) : ls(settings, namespace ?? "", listOptions);
  });

program
  .command("resync")
  .description(
    "make the server's backup tier equal to its primary (copies missing or different values, removes extra keys); safe while writes go on",
  )
  .action(async () => (await adminCommands()).resync(clientSettings()));

program
  .command("backup-status")
  .description("print the server's backup policy, keys owed to the backup and divergences, as JSON")
  .action(async () => (await adminCommands()).backupStatus(clientSettings()));

program
  .command("store-usage")
  .description("print the keys and value bytes a store (tenant) holds, as JSON (admin role)")
  .argument("<store>", "the store id")
  .option("--recount", "count from the data, correct the usage record quotas are decided on, and report the drift found")
  .action(async (store: string, options: { recount?: boolean }) =>
    (await adminCommands()).storeUsage(clientSettings(), store, options.recount === true),
  );

program
  .command("migrate")
  .description(
    "copy every store, namespace and key (with versions and revisions) from one store URI to another, then verify both sides; resumable",
  );

const snapshot = program.command("snapshot").description("copies of a server's primary (every store) as of one instant, as SQLite store files");
snapshot
  .command("save")
  .description("save a snapshot of the server's primary to FILE (atomically; admin role); prints its SHA-256")
  .argument("<file>", "the snapshot file to write")
  .action(async (file: string) => (await adminCommands()).snapshotSave(clientSettings(), file));
snapshot
  .command("status")
  .description("print a snapshot file's stores, keys, bytes and a digest per store")
  .argument("<file>", "a snapshot file")
  .action(async (file: string) => (await adminCommands()).snapshotStatus(file));
snapshot
  .command("restore")
  .description("load a snapshot file into an empty store of any backend (through tierkv migrate: resumable, verified)")
  .argument("<file>", "a snapshot file")
  .option("--to <uri>", "the target store URI: sqlite:PATH, postgres://…, grpc://HOST:PORT?token_file=FILE, …")
  .option("--overwrite", "load into a non-empty target: keys of the snapshot's stores it lacks are removed, other stores are left alone", false)
  .option("--prune-other-stores", "with --overwrite: also empty the target's stores the snapshot has no keys in", false)
  .option("--checkpoint <file>", "the migrate checkpoint file")
  // As for migrate: commander's own parse errors are usage errors, exit 2.
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2))
  .action(async (file: string, options: SnapshotRestoreOptions) => (await adminCommands()).snapshotRestore(file, options));

const token = program.command("token").description("manage the bearer tokens of an identities file (--tokens-file)");
token
  .command("add")
  .description("create a token for a store and roles; appends its SHA-256 to the file, prints the entry's id first and the token (once) as the last line")
  .requiredOption("--tokens-file <file>", "the identities file (created when missing)")
  .requiredOption("--store <id>", "the store (tenant) the token's holder reads and writes")
  .option("--role <role...>", `roles: ${ROLES.join(", ")}`, ["write"])
  .option("--name <name>", "a name for logs")
  .option("--max-keys <n>", "quota: most keys the store (or the identity's VSS store ids together) may hold")
  .option("--max-bytes <n>", "quota: most value bytes the store (or the identity's VSS store ids together) may hold")
  .option("--max-stores <n>", "quota: most VSS store ids holding keys the identity may have")
  .action((options: { tokensFile: string; store: string; role: string[]; name?: string; maxKeys?: string; maxBytes?: string; maxStores?: string }) => {
    const roles = options.role.flatMap((r) => r.split(",")).map((r) => {
      if (!(ROLES as readonly string[]).includes(r)) throw new SettingsError(`--role ${r}: expected one of ${ROLES.join(", ")}`);
      return r as Role;
    });
    const { id, token } = addToken(options.tokensFile, {
      store: options.store,
      roles,
      ...(options.name !== undefined && { name: options.name }),
      ...(options.maxKeys !== undefined && { maxKeys: parsePositiveInteger(options.maxKeys, "--max-keys") }),
      ...(options.maxBytes !== undefined && { maxBytes: parsePositiveInteger(options.maxBytes, "--max-bytes") }),
      ...(options.maxStores !== undefined && { maxStores: parsePositiveInteger(options.maxStores, "--max-stores") }),
    });
    process.stdout.write(
      `added token ${id} for store ${options.store} (roles ${roles.join(", ")}) to ${options.tokensFile}; it is shown only now:\n${token}\n`,
    );
  });

token
  .command("list")
  .description("print each entry of the file as a JSON line: id, name, store, roles, quota, created (never a token or its hash)")
  .requiredOption("--tokens-file <file>", "the identities file")
  .action((options: { tokensFile: string }) => {
    for (const entry of listIdentities(options.tokensFile)) process.stdout.write(`${JSON.stringify(entry)}\n`);
  });

token
  .command("rm")
  .description("remove the entry with this id (see token list); the file is replaced atomically and keeps its mode")
  .requiredOption("--tokens-file <file>", "the identities file")
  .argument("<id>", "the entry's id")
  .action((id: string, options: { tokensFile: string }) => {
    const removed = removeIdentity(options.tokensFile, id);
    process.stdout.write(`removed ${id} (store ${removed.store}) from ${options.tokensFile}; send the server a SIGHUP to stop accepting it\n`);
  });

try {
  await program.parseAsync();
} catch (error) {
  // A failure is one line for a person (a server that is down, a port in use), not a stack
  // trace; bad settings exit 2 like other usage errors.
  const message = error instanceof StoreError || error instanceof Error ? error.message : String(error);
  process.stderr.write(`tierkv: ${message}\n`);
  process.exit(error instanceof SettingsError ? 2 : 1);
}
