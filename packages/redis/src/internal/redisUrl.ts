/**
 * The `url` option: checked, then read into the driver's fields by this package, never handed to
 * ioredis as text. ioredis reads a URL with Node's legacy parser, which disagrees with the WHATWG
 * one on some URLs (a backslash in the password moves the host; a host that is not valid
 * punycode throws an error holding the whole URL) and prints a deprecation warning quoting the
 * URL, password included, for others. Reasons never quote the URL.
 */
import { Redacted } from "effect"
import type { RedisOptions } from "ioredis"

/** The URL's text, unwrapped from `Redacted`. */
const textOf = (given: unknown): unknown =>
  Redacted.isRedacted(given) ? Redacted.value(given as Redacted.Redacted<unknown>) : given

/** What is wrong with a `url` option, or undefined. */
export const urlProblem = (given: unknown): string | undefined => {
  const text = textOf(given)
  if (typeof text !== "string") return "must be a string (or a Redacted string)"
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return "must be a redis:// or rediss:// URL: it does not parse as a URL"
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    return "must be a redis:// or rediss:// URL: it has another scheme"
  }
  if (url.hostname === "") return "must be a redis:// or rediss:// URL with a host (redis://host:port)"
  if (url.search !== "" || url.hash !== "") {
    return "must not carry query options or a fragment: give them as options of the layer"
  }
  if (!/^\/?(\d+)?$/.test(url.pathname) || !Number.isSafeInteger(Number(url.pathname.slice(1) || "0"))) {
    return "may name a database only as a number (redis://host:port/2)"
  }
  if (url.port === "0") return "must name a port in 1..65535"
  try {
    decodeURIComponent(url.username)
    decodeURIComponent(url.password)
  } catch {
    return "has a user name or password with a percent-escape that does not decode"
  }
  return undefined
}

/**
 * The driver's fields that a URL checked by {@link urlProblem} gives: host, and port, user name,
 * password and database where it says them. They win over the separate options, as ioredis's own
 * reading of a URL would. `rediss://` turns TLS on: with `tls` (the separate option) when given.
 */
export const urlFields = (given: unknown, tls: RedisOptions["tls"]): RedisOptions => {
  const url = new URL(textOf(given) as string)
  const fields: RedisOptions = { host: url.hostname.replace(/^\[(.*)\]$/, "$1") }
  if (url.protocol === "rediss:") fields.tls = tls ?? {}
  if (url.port !== "") fields.port = Number(url.port)
  if (url.username !== "") fields.username = decodeURIComponent(url.username)
  if (url.password !== "") fields.password = decodeURIComponent(url.password)
  if (url.pathname.length > 1) fields.db = Number(url.pathname.slice(1))
  return fields
}
