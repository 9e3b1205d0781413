//! Settings from flags, environment and a JSON config file, in that order of precedence.
//!
//! Each setting is declared once (flag, description, default, parser); its environment variable
//! (`TIERKV_<FLAG>`) and config-file key (the flag's name) derive from the flag, so the three
//! sources can never drift apart. A config file with an unknown key is an error naming it.

import { readFileSync } from "node:fs";
import { Option, type Command } from "commander";

export interface Setting<T> {
  /** Commander flag syntax, e.g. `--max-value-bytes <n>`; `<value...>` makes it repeatable. */
  readonly flag: string;
  readonly description: string;
  readonly defaultValue: T;
  /** Turns a raw value (string from flag/env, JSON value from the file) into T; throws on bad. */
  readonly parse: (raw: unknown, origin: string) => T;
}

export type SettingsSpec = Record<string, Setting<unknown>>;
export type SettingsOf<S extends SettingsSpec> = { -readonly [K in keyof S]: ReturnType<S[K]["parse"]> };

import { SettingsError } from "../app/config.js";

export { SettingsError };

function flagName(setting: Setting<unknown>): string {
  return setting.flag.split(" ")[0]!.replace(/^--/, "");
}

function envName(setting: Setting<unknown>): string {
  return `TIERKV_${flagName(setting).replace(/-/g, "_").toUpperCase()}`;
}

function isRepeatable(setting: Setting<unknown>): boolean {
  return setting.flag.includes("...>");
}

/** Adds every setting as an option of `command`, plus `--config FILE`. */
export function addSettingOptions(command: Command, spec: SettingsSpec): Command {
  for (const setting of Object.values(spec)) {
    const shown = JSON.stringify(setting.defaultValue);
    command.addOption(
      new Option(setting.flag, `${setting.description} [env ${envName(setting)}; default ${shown}]`),
    );
  }
  return command.addOption(new Option("--config <file>", "JSON config file; keys are the flag names [env TIERKV_CONFIG]"));
}

function readConfigFile(path: string, spec: SettingsSpec): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new SettingsError(`config file ${path}: ${(error as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new SettingsError(`config file ${path}: expected a JSON object of settings`);
  }
  const known = new Set(Object.values(spec).map(flagName));
  for (const key of Object.keys(parsed)) {
    if (!known.has(key)) {
      throw new SettingsError(`config file ${path}: unknown setting "${key}"; known: ${[...known].join(", ")}`);
    }
  }
  return parsed as Record<string, unknown>;
}

/**
 * Resolves every setting: flag, else environment, else config file, else default.
 * `cli` is commander's `opts()`; `env` is usually `process.env`.
 */
export function resolveSettings<S extends SettingsSpec>(
  spec: S,
  cli: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): SettingsOf<S> {
  // An empty variable counts as unset (the usual way to clear one in compose files and shells).
  const fromEnvironment = (name: string): string | undefined => (env[name] === "" ? undefined : env[name]);
  const configPath = (cli["config"] as string | undefined) ?? fromEnvironment("TIERKV_CONFIG");
  const file = configPath === undefined ? {} : readConfigFile(configPath, spec);
  const resolved: Record<string, unknown> = {};
  for (const [name, setting] of Object.entries(spec)) {
    const flag = `--${flagName(setting)}`;
    const fromEnv = fromEnvironment(envName(setting));
    let raw: unknown;
    let origin: string;
    if (cli[name] !== undefined) [raw, origin] = [cli[name], flag];
    else if (fromEnv !== undefined) {
      raw = isRepeatable(setting) ? fromEnv.split(",").filter((s) => s !== "") : fromEnv;
      origin = envName(setting);
    } else if (file[flagName(setting)] !== undefined) {
      [raw, origin] = [file[flagName(setting)], `config key "${flagName(setting)}"`];
    } else {
      resolved[name] = setting.defaultValue;
      continue;
    }
    resolved[name] = setting.parse(raw, origin);
  }
  return resolved as SettingsOf<S>;
}

/**
 * The config-file form of resolved settings: keys are the flag names, unset settings are left
 * out. `resolveSettings` reads it back to the same settings (`--print-config` → `--config`).
 */
export function toConfigFile<S extends SettingsSpec>(spec: S, settings: SettingsOf<S>): Record<string, unknown> {
  const file: Record<string, unknown> = {};
  for (const [name, setting] of Object.entries(spec)) {
    const value = settings[name];
    if (value !== undefined) file[flagName(setting)] = value;
  }
  return file;
}

// Parsers shared by settings.

export function parseString(raw: unknown, origin: string): string {
  if (typeof raw !== "string" || raw === "") throw new SettingsError(`${origin}: expected a non-empty string`);
  return raw;
}

/** For settings whose default is "not set". */
export function parseOptionalString(raw: unknown, origin: string): string | undefined {
  return parseString(raw, origin);
}

export function parseNonNegativeInteger(raw: unknown, origin: string): number {
  return raw === 0 || raw === "0" ? 0 : parsePositiveInteger(raw, origin);
}

export function parsePositiveInteger(raw: unknown, origin: string): number {
  const value = typeof raw === "string" && /^[0-9]+$/.test(raw) ? Number(raw) : raw;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw new SettingsError(`${origin}: expected a positive whole number, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function oneOf<T extends string>(choices: readonly T[]): (raw: unknown, origin: string) => T {
  return (raw, origin) => {
    if (typeof raw !== "string" || !(choices as readonly string[]).includes(raw)) {
      throw new SettingsError(`${origin}: expected one of ${choices.join(", ")}, got ${JSON.stringify(raw)}`);
    }
    return raw as T;
  };
}

export function parseStringList(raw: unknown, origin: string): string[] {
  const list = typeof raw === "string" ? [raw] : raw;
  if (!Array.isArray(list) || !list.every((item) => typeof item === "string")) {
    throw new SettingsError(`${origin}: expected a list of strings`);
  }
  return list;
}

export function listOf<T extends string>(choices: readonly T[]): (raw: unknown, origin: string) => T[] {
  const one = oneOf(choices);
  return (raw, origin) => parseStringList(raw, origin).map((item) => one(item, origin));
}

/** A switch: `--flag` alone, or true/false from the environment or the file. */
export function parseBoolean(raw: unknown, origin: string): boolean {
  if (raw === true || raw === "true" || raw === "1") return true;
  if (raw === false || raw === "false" || raw === "0") return false;
  throw new SettingsError(`${origin}: expected true or false, got ${JSON.stringify(raw)}`);
}

/** Like `listOf`, and each item may itself be a comma-separated list (`--auth tokens,jwt`). */
export function commaListOf<T extends string>(choices: readonly T[]): (raw: unknown, origin: string) => T[] {
  const list = listOf(choices);
  return (raw, origin) => list(parseStringList(raw, origin).flatMap((item) => item.split(",")).filter((i) => i !== ""), origin);
}
