/**
 * A command connection whose replies a test can hold: the command connection's client through
 * utils.ts `silencingProxy`, whose `hold()` keeps every reply of the server from it until
 * `release()`, as while Redis is busy (a command sent while held can only end by its deadline).
 */

import { Effect } from "effect"
import type { RedisConnection } from "../src/index.js"
import { commandClient, silencingProxy } from "./utils.js"

/**
 * The client (with `options`) and its proxy; the proxy releases what it holds when the scope
 * closes, before the connection does, if the test did not.
 */
export const heldClient = (options: RedisConnection.Options = {}) =>
  Effect.gen(function* () {
    const proxy = yield* silencingProxy
    const client = yield* commandClient({ ...options, host: "127.0.0.1", port: proxy.port })
    // Before the connection closes (finalizers run last first).
    yield* Effect.addFinalizer(() => Effect.sync(proxy.release))
    return { client, proxy }
  })
