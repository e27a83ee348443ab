/**
 * Keeps ioredis off the console. ioredis writes three kinds of notices with `console.warn`:
 * the ready check skipped because INFO is denied (an ACL user without `info`), and a password
 * given to a server that does not require one. Both are recoverable conditions that ioredis
 * carries on from; here they go to `report` (Effect logging) instead, and ioredis sees no error.
 * The overrides are per connection (own properties of the instance), never on the prototype.
 */
import type { Redis } from "ioredis"
import { withoutUser } from "./sanitize.js"

type Callback = (error: Error | null | undefined, result?: unknown) => void

interface Internals {
  _readyCheck: (callback: Callback) => void
  info: (callback: Callback) => unknown
  auth: (...args: Array<unknown>) => unknown
}

/** The AUTH failures ioredis tolerates (and would print). */
const TOLERATED_AUTH = ["no password is set", "without any password configured for the default user"]

/**
 * Routes ioredis's console notices on `client` to `report`.
 */
export const quiet = (client: Redis, report: (notice: string) => void): void => {
  const internals = client as unknown as Internals
  const proto = Object.getPrototypeOf(client) as Internals
  // The ready check asks INFO; denied (NOPERM), ioredis prints a notice and goes on as ready.
  // INFO answers here "not loading" for it instead, after saying so once through `report`.
  let reportedInfo = false
  internals._readyCheck = function (this: Redis, callback: Callback) {
    const self = this as unknown as Internals
    self.info = (cb: Callback) =>
      proto.info.call(this, (error: Error | null | undefined, result?: unknown) => {
        if (error?.message?.includes("NOPERM")) {
          if (!reportedInfo) {
            reportedInfo = true
            // Redis 7.2 names the user in the refusal ("User alice has no permissions ...").
            const refusal = withoutUser(error.message).split("\n")[0]
            report(`ready check skipped: INFO is denied to this user (${refusal})`)
          }
          cb(null, "loading:0")
          return
        }
        cb(error, result)
      })
    try {
      proto._readyCheck.call(this, callback)
    } finally {
      delete (self as Partial<Internals>).info
    }
  }
  internals.auth = function (this: Redis, ...args: Array<unknown>) {
    const last = args[args.length - 1]
    if (typeof last !== "function") return proto.auth.apply(this, args)
    const callback = last as Callback
    return proto.auth.apply(this, [
      ...args.slice(0, -1),
      (error: Error | null | undefined, result?: unknown) => {
        if (error && TOLERATED_AUTH.some((text) => error.message.includes(text))) {
          report("a password was given but the server does not require one")
          callback(null, "OK")
          return
        }
        callback(error, result)
      }
    ])
  }
}
