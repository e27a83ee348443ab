/**
 * RedisInvalidationBus's option checks and defaults: the channel, the namespace (with the
 * connection's database), the interval of the malformed-message log, and the most bytes of one
 * message. A bad option is a CacheConfigError naming it.
 */
import { CacheError } from "@tiercache/core"
import { type Duration, Effect } from "effect"
import type { RedisConnection } from "../RedisConnection.js"
import type { Options } from "../RedisInvalidationBus.js"
import { busNamespace } from "./namespace.js"
import { decodeDuration, given, notAnObject, notAPositiveInteger } from "./optionsObject.js"
import { isWellFormed } from "./wellFormed.js"

/** The bus's options checked, with their defaults (`defaultChannel` when none is given). */
export const resolveOptions = (
  options: Options,
  connection: RedisConnection.Service,
  defaultChannel: string
): Effect.Effect<
  {
    readonly channel: string
    readonly namespace: string
    readonly logInterval: Duration.Duration
    readonly maxMessageBytes: number
  },
  CacheError.CacheConfigError
> =>
  Effect.gen(function* () {
    const badOptions = notAnObject(options)
    if (badOptions) return yield* badOptions
    const channel = given(options.channel, defaultChannel)
    if (typeof channel !== "string" || channel.length === 0) {
      return yield* new CacheError.CacheConfigError({
        option: "channel",
        reason: "must be a non-empty string"
      })
    }
    // Redis would subscribe to its U+FFFD form, and no message would match the name again.
    if (!isWellFormed(channel)) {
      return yield* new CacheError.CacheConfigError({
        option: "channel",
        reason: "must be well-formed UTF-16 (a lone surrogate reaches Redis as U+FFFD)"
      })
    }
    const base = given(options.namespace, connection.keyPrefix)
    if (typeof base !== "string") {
      return yield* new CacheError.CacheConfigError({ option: "namespace", reason: "must be a string" })
    }
    if (!isWellFormed(base)) {
      return yield* new CacheError.CacheConfigError({
        option: "namespace",
        reason: "must be well-formed UTF-16, as the key prefix it names"
      })
    }
    // Pub/Sub channels are shared by every database of a server: a given namespace gets the
    // database too, as the default does.
    const namespace = busNamespace(base, connection.client.options.db ?? 0)
    // Zero logs every malformed message; an infinite one logs the first of each kind only (the
    // interval is only compared with, never a timer).
    const logInterval = decodeDuration(
      given(options.malformedLogInterval, "1 minute"),
      "malformedLogInterval"
    )
    if (logInterval instanceof CacheError.CacheConfigError) return yield* logInterval
    const maxMessageBytes = given(options.maxMessageBytes, 1024 * 1024)
    const badMax = notAPositiveInteger(maxMessageBytes, "maxMessageBytes")
    if (badMax) return yield* badMax
    return { channel, namespace, logInterval, maxMessageBytes }
  })
