/**
 * The cache's options, checked and resolved once when the cache is built.
 */
import { Effect } from "effect"
import { CacheConfigError, CacheInputError } from "../CacheError.js"
import * as CacheStrategy from "../CacheStrategy.js"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type { Options } from "../TieredCache.js"
import * as Breaker from "./breaker.js"
import { type ResolvedTimeouts, resolveTimeouts } from "./callOptions.js"
import {
  configMillis,
  describe,
  given,
  isPositiveInteger,
  lifetimeError,
  nonEmptyStringError,
  optionsObjectError
} from "./validate.js"

/** The cache's options with every default applied, durations in milliseconds. */
export interface Config {
  readonly defaultTtl: number
  readonly defaultGrace: number
  readonly l1Scale: number
  readonly staleWhileRevalidate: boolean
  readonly failSafeThrottle: number
  readonly defaultTimeouts: ResolvedTimeouts
  readonly breaker: CircuitBreaker.Options | false
  readonly tagRetention: number
  readonly metricsInterval: number
  readonly instanceId: string
  readonly cacheName: string
  readonly spans: boolean | undefined
  readonly keysInSpans: boolean
  /** The recovery record's bound and retry interval (ms), or false. */
  readonly recovery: { readonly maxChanges: number; readonly retryInterval: number } | false
}

const millis = (
  input: unknown,
  option: string,
  fallback: number,
  allowZero = false,
  lifetime = false
): Effect.Effect<number, CacheConfigError> => {
  if (input === undefined) return Effect.succeed(fallback)
  const ms = configMillis(input, option, allowZero, lifetime)
  return typeof ms === "number" ? Effect.succeed(ms) : Effect.fail(ms)
}

/** Checks the cache's options: a CacheConfigError names the first bad one. */
export const resolve = (options: Options): Effect.Effect<Config, CacheConfigError> =>
  Effect.gen(function* () {
    const notObject = optionsObjectError(options)
    if (notObject) return yield* notObject
    const ttlInput = given(options.defaultTtl, CacheStrategy.Default)
    const defaultTtl = yield* millis(
      CacheStrategy.isCacheStrategy(ttlInput) ? CacheStrategy.toDurationInput(ttlInput) : ttlInput,
      "defaultTtl",
      0,
      false,
      true
    )
    // Lifetimes of entries (the fail-safe's is an L1 copy's): 0 or at least 1 ms (validate.ts).
    const defaultGrace = yield* millis(options.defaultGrace, "defaultGrace", 0, true, true)
    const badLifetime = lifetimeError(defaultTtl, defaultGrace)
    if (badLifetime)
      return yield* new CacheConfigError({ option: "defaultGrace", reason: badLifetime.reason })
    const l1Scale = given(options.l1TtlScale, 1)
    if (typeof l1Scale !== "number" || !(l1Scale > 0 && l1Scale <= 1)) {
      return yield* new CacheConfigError({
        option: "l1TtlScale",
        reason: `must be in (0, 1], got ${l1Scale}`
      })
    }
    const failSafeThrottle = yield* millis(options.failSafeThrottle, "failSafeThrottle", 5_000, true, true)
    const defaultTimeouts = resolveTimeouts(options.timeouts)
    if (defaultTimeouts instanceof CacheInputError) {
      return yield* new CacheConfigError({ option: "timeouts", reason: defaultTimeouts.reason })
    }
    const breaker = given(options.breaker, {})
    const badBreaker = breaker === false ? undefined : Breaker.optionsError(breaker, "breaker.")
    if (badBreaker) return yield* badBreaker
    const recoveryInput = given(options.recovery, {})
    let recovery: Config["recovery"] = false
    if (recoveryInput !== false) {
      const notObject = optionsObjectError(recoveryInput, "recovery")
      if (notObject) return yield* notObject
      const maxChanges = given(recoveryInput.maxChanges, 10_000)
      if (!isPositiveInteger(maxChanges)) {
        return yield* new CacheConfigError({
          option: "recovery.maxChanges",
          reason: "must be a positive integer"
        })
      }
      const retryInterval = yield* millis(recoveryInput.retryInterval, "recovery.retryInterval", 5_000)
      recovery = { maxChanges, retryInterval }
    }
    // Stamped on every message as its origin, which receivers decode as a string: an id of
    // another type (process.pid) made each of this instance's messages malformed elsewhere.
    // As `given`, the default made only when it is needed.
    const instanceId = options.instanceId === undefined ? crypto.randomUUID() : options.instanceId
    const badId = nonEmptyStringError(instanceId, "instanceId")
    if (badId) return yield* badId
    // Switches and the name from plain JS: "false" (an environment variable passed as is) is a
    // truthy string, which would have turned stale-while-revalidate on.
    for (const option of ["staleWhileRevalidate", "spans", "keysInSpans"] as const) {
      const value: unknown = options[option]
      if (value !== undefined && typeof value !== "boolean") {
        return yield* new CacheConfigError({ option, reason: `must be a boolean, got ${describe(value)}` })
      }
    }
    const cacheName = given(options.name, "default")
    const badName = nonEmptyStringError(cacheName, "name")
    if (badName) return yield* badName
    return {
      recovery,
      defaultTtl,
      defaultGrace,
      l1Scale,
      staleWhileRevalidate: given(options.staleWhileRevalidate, true),
      failSafeThrottle,
      defaultTimeouts,
      breaker,
      tagRetention: yield* millis(options.tagRetention, "tagRetention", 7 * 24 * 3600_000),
      metricsInterval: yield* millis(options.metricsInterval, "metricsInterval", 10_000),
      instanceId,
      cacheName,
      spans: options.spans === undefined ? undefined : options.spans === true,
      keysInSpans: options.keysInSpans === true
    }
  })
