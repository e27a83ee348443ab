import type { Either, ParseResult } from "effect"
import {
  Cause,
  Deferred,
  Duration,
  Effect,
  ExecutionStrategy,
  Exit,
  Fiber,
  FiberId,
  Option,
  Schedule,
  Schema,
  Scope,
  Stream
} from "effect"
import {
  BusError,
  CacheConfigError,
  type CacheError,
  CacheInputError,
  CacheTimeoutError,
  CacheWriteError,
  type TierError
} from "../CacheError.js"
import type { CacheHealth, CacheStats, InvalidationStats } from "../CacheStats.js"
import * as CacheStrategy from "../CacheStrategy.js"
import * as CircuitBreaker from "../CircuitBreaker.js"
import * as Entry from "../Entry.js"
import * as Glob from "../Glob.js"
import { type Event, InvalidationBus } from "../InvalidationBus.js"
import type { InvalidationMessage } from "../InvalidationMessage.js"
import { isMemoryTier } from "../MemoryTier.js"
import { L1, L2, type Tier, Tiers } from "../Tier.js"
import type {
  ComputeOptions,
  Options,
  ReadOptions,
  TieredCache,
  TypedWriteOptions,
  WriteOptions
} from "../TieredCache.js"
import { type FastPath, FastPathTypeId, memoizeTyped, type Slot } from "./fastPath.js"
import { fnv1a } from "./hash.js"
import { makeFlusher } from "./metrics.js"
import {
  computeError,
  durationMillis,
  isBadKey,
  jsonError,
  keyError,
  keysError,
  lifetimeError,
  patternError,
  tagError,
  tagsError
} from "./validate.js"

type AnySchema = Schema.Schema<unknown, unknown, never>

/** A computation (or lower-tier lookup) under way for one key. */
interface Flight {
  readonly deferred: Deferred.Deferred<FlightResult, unknown>
  /** The schema the flight decodes with (undefined: untyped). */
  readonly schema: AnySchema | undefined
  /** A stale value that may answer the waiters (grace window, soft timeout, fail-safe). */
  stale: FlightResult | undefined
  /** Whether the waiters were already answered (with the stale value). */
  settled: boolean
  /** Whether the computed value is in L1 and the lower tiers are being written. */
  writing: boolean
  /** The fiber running the flight. */
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
}

/** A value found in a tier (index -1: L1, 0: L2, ...). */
interface Found {
  readonly index: number
  readonly result: FlightResult
}

/** A lookup's outcome: a fresh hit, and the first stale entry seen. */
interface Lookup {
  readonly hit: Found | undefined
  readonly stale: Found | undefined
}

const noLookup: Lookup = { hit: undefined, stale: undefined }

interface FlightResult {
  /** The entry as stored (encoded value). */
  readonly entry: Entry.Entry
  /** The value for the flight's schema (decoded), or the encoded value when untyped. */
  readonly value: unknown
}

/** A snapshot of the versions a read saw before it went below L1. */
interface Guard {
  readonly epoch: number
  readonly stripe: number
  readonly version: number
}

interface ResolvedWrite {
  readonly ttlMs: number
  readonly graceMs: number
  readonly tags: ReadonlyArray<string>
}

interface ResolvedCompute extends ResolvedWrite {
  readonly softMs: number | undefined
  readonly hardMs: number | undefined
}

const STRIPES = 8192

/** Longest a closing cache waits for the lower-tier writes of values it already delivered. */
const DRAIN_TIMEOUT = "5 seconds"

/** Where tag invalidation times live in the lower tiers (user keys may not start with it). */
const TAG_PREFIX = "__tiercache:tag:"

const NEEDS_TAGS: unique symbol = Symbol("NeedsTags")

/** What `decodeValue` answers for a value that does not decode. */
const NOT_DECODED: unique symbol = Symbol("NotDecoded")

/** The invalidation time of a tag never invalidated. */
const NEVER = Number.NEGATIVE_INFINITY

const stripeOf = (key: string): number => fnv1a(key) & (STRIPES - 1)

const decoders = new WeakMap<object, (u: unknown) => Either.Either<unknown, ParseResult.ParseError>>()
const decoderOf = (schema: AnySchema) => {
  let d = decoders.get(schema)
  if (d === undefined) {
    d = Schema.decodeUnknownEither(schema)
    decoders.set(schema, d)
  }
  return d
}
const encoders = new WeakMap<object, (u: unknown) => Either.Either<unknown, ParseResult.ParseError>>()
const encoderOf = (schema: AnySchema) => {
  let e = encoders.get(schema)
  if (e === undefined) {
    e = Schema.encodeUnknownEither(schema)
    encoders.set(schema, e)
  }
  return e
}

/** Resolves computation timeouts (soft must not exceed hard). */
const resolveTimeouts = (
  t: { readonly soft?: unknown; readonly hard?: unknown } | undefined
): { readonly softMs: number | undefined; readonly hardMs: number | undefined } | CacheInputError => {
  if (t === undefined) return { softMs: undefined, hardMs: undefined }
  const softMs = t.soft === undefined ? undefined : durationMillis(t.soft, "timeouts.soft")
  if (softMs instanceof CacheInputError) return softMs
  const hardMs = t.hard === undefined ? undefined : durationMillis(t.hard, "timeouts.hard")
  if (hardMs instanceof CacheInputError) return hardMs
  if (softMs !== undefined && hardMs !== undefined && softMs > hardMs) {
    return new CacheInputError({
      problem: "InvalidTtl",
      reason: "timeouts.soft must not exceed timeouts.hard"
    })
  }
  return { softMs, hardMs }
}

const firstLine = (s: string): string => s.split("\n").slice(0, 3).join(" ")

/** @internal */
export const make = (
  options: Options = {}
): Effect.Effect<TieredCache.Service, CacheConfigError | BusError, L1 | L2 | Scope.Scope> =>
  Effect.gen(function* () {
    const l1 = yield* L1
    const l2 = yield* L2
    const extra = yield* Effect.serviceOption(Tiers)
    const busOption = yield* Effect.serviceOption(InvalidationBus)
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    // Computations run in a scope of their own, closed by the cache's last finalizer once the
    // lower-tier writes of delivered values are done (see "shutdown" below).
    const flightScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)

    // ---- configuration -------------------------------------------------------------------
    const defaultTtlInput = options.defaultTtl ?? CacheStrategy.Default
    const defaultTtl = durationMillis(
      CacheStrategy.isCacheStrategy(defaultTtlInput)
        ? CacheStrategy.toDurationInput(defaultTtlInput)
        : defaultTtlInput,
      "defaultTtl"
    )
    if (typeof defaultTtl !== "number") {
      return yield* new CacheConfigError({ option: "defaultTtl", reason: defaultTtl.reason })
    }
    const defaultGrace =
      options.defaultGrace === undefined ? 0 : durationMillis(options.defaultGrace, "defaultGrace", true)
    if (typeof defaultGrace !== "number") {
      return yield* new CacheConfigError({ option: "defaultGrace", reason: defaultGrace.reason })
    }
    const badLifetime = lifetimeError(defaultTtl, defaultGrace)
    if (badLifetime)
      return yield* new CacheConfigError({ option: "defaultGrace", reason: badLifetime.reason })
    const l1Scale = options.l1TtlScale ?? 1
    if (typeof l1Scale !== "number" || !(l1Scale > 0 && l1Scale <= 1)) {
      return yield* new CacheConfigError({
        option: "l1TtlScale",
        reason: `must be in (0, 1], got ${l1Scale}`
      })
    }
    const staleWhileRevalidate = options.staleWhileRevalidate ?? true
    const failSafeThrottle =
      options.failSafeThrottle === undefined
        ? 5_000
        : durationMillis(options.failSafeThrottle, "failSafeThrottle", true)
    if (typeof failSafeThrottle !== "number") {
      return yield* new CacheConfigError({ option: "failSafeThrottle", reason: failSafeThrottle.reason })
    }
    const defaultTimeouts = resolveTimeouts(options.timeouts)
    if (defaultTimeouts instanceof CacheInputError) {
      return yield* new CacheConfigError({ option: "timeouts", reason: defaultTimeouts.reason })
    }
    const breakerOptions = options.breaker ?? {}
    if (breakerOptions !== false) {
      for (const [option, input] of [
        ["breaker.timeout", breakerOptions.timeout],
        ["breaker.openFor", breakerOptions.openFor]
      ] as const) {
        const ms = input === undefined ? 1 : durationMillis(input, option)
        if (typeof ms !== "number") return yield* new CacheConfigError({ option, reason: ms.reason })
      }
      const threshold = breakerOptions.failureThreshold
      if (threshold !== undefined && !(Number.isSafeInteger(threshold) && threshold > 0)) {
        return yield* new CacheConfigError({
          option: "breaker.failureThreshold",
          reason: "must be a positive integer"
        })
      }
    }
    const tagRetention =
      options.tagRetention === undefined
        ? 7 * 24 * 3600_000
        : durationMillis(options.tagRetention, "tagRetention")
    if (typeof tagRetention !== "number") {
      return yield* new CacheConfigError({ option: "tagRetention", reason: tagRetention.reason })
    }
    const metricsInterval =
      options.metricsInterval === undefined
        ? 10_000
        : durationMillis(options.metricsInterval, "metricsInterval")
    if (typeof metricsInterval !== "number") {
      return yield* new CacheConfigError({ option: "metricsInterval", reason: metricsInterval.reason })
    }
    const instanceId = options.instanceId ?? crypto.randomUUID()
    const cacheName = options.name ?? "default"

    const fast: FastPath | undefined = isMemoryTier(l1) ? l1[FastPathTypeId] : undefined
    const rawLower: ReadonlyArray<Tier.Service> = [l2, ...Option.getOrElse(extra, () => [])]
    const guarded =
      breakerOptions === false
        ? undefined
        : yield* Effect.forEach(rawLower, (tier) => CircuitBreaker.guard(tier, breakerOptions))
    const lower: ReadonlyArray<Tier.Service> = guarded ?? rawLower
    const labels = labelTiers([l1, ...lower])
    const now = () => clock.unsafeCurrentTimeMillis()

    // ---- counters (plain numbers: the hit path must not allocate) --------------------------
    let l1Hits = 0
    const tierHits = lower.map(() => 0)
    let coalesced = 0
    let misses = 0
    let promotions = 0
    let computations = 0
    let computeErrors = 0
    let decodeErrors = 0
    let writeFailures = 0
    let discardedWrites = 0
    let staleServed = 0
    let failSafeHits = 0
    let timeouts = 0
    let breakerRejections = 0
    const tierErrors = new Map<string, number>()
    const bus = {
      sent: 0,
      publishFailures: 0,
      skipped: 0,
      received: 0,
      own: 0,
      malformed: 0,
      applied: 0,
      resyncs: 0
    }

    // ---- versions: a read that went below L1 only promotes if nothing changed meanwhile ------
    let epoch = 0
    const stripes = new Uint32Array(STRIPES)
    const guardOf = (key: string): Guard => {
      const stripe = stripeOf(key)
      return { epoch, stripe, version: stripes[stripe]! }
    }
    const unchanged = (g: Guard) => g.epoch === epoch && stripes[g.stripe] === g.version
    const bump = (key: string) => {
      const s = stripeOf(key)
      stripes[s] = stripes[s]! + 1
    }

    const flights = new Map<string, Flight>()

    // ---- tags: lazy invalidation ---------------------------------------------------------
    // invalidateTag stores the tag's invalidation time under a reserved key in the lower tiers
    // and tells the other instances; an entry carrying a tag invalidated at or after its
    // creation is a miss. Each instance keeps the times of the tags it has met; a tag it has
    // not met is read from the lower tiers (on the slow path) before an entry carrying it is
    // used.
    const tagTimes = new Map<string, number>()
    /** true: every tag known and valid; false: invalidated; undefined: some tag unknown. */
    const tagsValid = (entry: Entry.Entry): boolean | undefined => {
      const tags = entry.tags
      for (let i = 0; i < tags.length; i++) {
        const t = tagTimes.get(tags[i]!)
        if (t === undefined) return undefined
        if (t >= entry.createdAt) return false
      }
      return true
    }
    const loadTags = (tags: ReadonlyArray<string>): Effect.Effect<void> =>
      Effect.forEach(
        tags.filter((tag) => !tagTimes.has(tag)),
        (tag) =>
          Effect.gen(function* () {
            for (let i = 0; i < lower.length; i++) {
              const found = yield* lower[i]!.get(TAG_PREFIX + tag).pipe(
                Effect.catchAll((error) => Effect.as(recordTierError(i + 1, error), undefined))
              )
              // A tier that did not answer leaves the tag unknown: entries carrying it are
              // misses until it can be read (stale data is worse than a miss).
              if (found === undefined) return
              if (found._tag === "Some") {
                const at = typeof found.value.value === "number" ? found.value.value : NEVER
                tagTimes.set(tag, Math.max(tagTimes.get(tag) ?? NEVER, at))
                return
              }
            }
            if (!tagTimes.has(tag)) tagTimes.set(tag, NEVER)
          }),
        { discard: true }
      )
    /** An entry usable as far as tags go: loads unknown tags first. */
    const tagsOk = (entry: Entry.Entry): Effect.Effect<boolean> => {
      if (entry.tags.length === 0) return Effect.succeed(true)
      const known = tagsValid(entry)
      if (known !== undefined) return Effect.succeed(known)
      return Effect.map(loadTags(entry.tags), () => tagsValid(entry) === true)
    }
    /** The L1 slot if usable now; NEEDS_TAGS when a tag must be read first; invalidated ones are dropped. */
    const lookupL1 = (key: string, t: number): Slot | undefined | typeof NEEDS_TAGS => {
      const slot = fast!.lookup(key, t)
      if (slot === undefined || slot.entry.tags.length === 0) return slot
      const valid = tagsValid(slot.entry)
      if (valid === true) return slot
      if (valid === false) {
        fast!.remove(key)
        return undefined
      }
      return NEEDS_TAGS
    }
    /** Reads the tags of the L1 slot under `key`, then runs the operation again. */
    const afterTags = <A, E, R>(key: string, again: () => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.zipRight(loadTags(fast!.lookup(key, now())?.entry.tags ?? []), Effect.suspend(again))

    // ---- tier plumbing ---------------------------------------------------------------------
    const recordTierError = (index: number, error: TierError): Effect.Effect<void> => {
      if (CircuitBreaker.isRejection(error)) {
        breakerRejections++
        return Effect.void
      }
      const label = labels[index]!
      tierErrors.set(label, (tierErrors.get(label) ?? 0) + 1)
      return Effect.logWarning(`tiercache: ${error.message}`).pipe(
        Effect.annotateLogs({ tier: label, operation: error.operation, cache: cacheName })
      )
    }

    /** Runs `op` on every tier (L1 is index 0); answers the failures. */
    /**
     * Runs an operation on L1 first, then (after `afterL1`) on every lower tier at once;
     * answers the failures, each counted and logged.
     */
    const onEveryTier = (
      l1Op: () => Effect.Effect<void, TierError>,
      lowerOp: (tier: Tier.Service) => Effect.Effect<unknown, TierError>,
      afterL1?: () => void
    ): Effect.Effect<ReadonlyArray<TierError>> =>
      Effect.gen(function* () {
        const failures: Array<TierError> = []
        const first = yield* Effect.either(l1Op())
        if (first._tag === "Left") {
          yield* recordTierError(0, first.left)
          failures.push(first.left)
        }
        afterL1?.()
        const rest = yield* Effect.forEach(
          lower,
          (tier, i) =>
            lowerOp(tier).pipe(
              Effect.as(undefined),
              Effect.catchAll((error) => Effect.as(recordTierError(i + 1, error), error))
            ),
          // One lower tier (the usual case) needs no fiber of its own.
          { concurrency: lower.length > 1 ? "unbounded" : 1 }
        )
        for (const r of rest) if (r !== undefined) failures.push(r)
        return failures
      })

    const failIfAllFailed = (key: string, operation: string, failures: ReadonlyArray<TierError>) => {
      if (failures.length < lower.length + 1) return Effect.void
      writeFailures++
      return Effect.fail(new CacheWriteError({ key, operation, failures }))
    }

    const l1Entry = (entry: Entry.Entry, at: number) =>
      l1Scale === 1 ? entry : Entry.scale(entry, at, l1Scale)

    /** Stores into L1 and answers the slot, for the fast path. */
    const storeL1 = (key: string, entry: Entry.Entry): Effect.Effect<Slot | undefined, TierError> =>
      fast !== undefined
        ? Effect.sync(() => fast.store(key, l1Entry(entry, now())))
        : Effect.as(l1.set(key, l1Entry(entry, now())), undefined)

    const removeL1 = (keys: ReadonlyArray<string>): Effect.Effect<void, TierError> =>
      fast !== undefined
        ? Effect.sync(() => {
            for (const key of keys) fast.remove(key)
          })
        : l1.remove(keys)

    // Publishes go through a breaker of their own: with Redis hung, a write would otherwise wait
    // a full timeout on every publish even after the tier's breaker has opened.
    const busBreaker =
      busOption._tag === "Some" && breakerOptions !== false
        ? yield* CircuitBreaker.make("bus", breakerOptions)
        : undefined
    const publish = (message: InvalidationMessage): Effect.Effect<void> => {
      if (busOption._tag === "None") return Effect.void
      const send = busOption.value.publish(message)
      const guardedSend =
        busBreaker === undefined
          ? send
          : busBreaker.run(
              send,
              () => new BusError({ operation: "publish", reason: CircuitBreaker.OPEN_REASON }),
              () =>
                new BusError({
                  operation: "publish",
                  reason: `timed out after ${Duration.toMillis(busBreaker.timeout)} ms`
                })
            )
      return guardedSend.pipe(
        Effect.tap(() => {
          bus.sent++
        }),
        Effect.catchAll((error) => {
          bus.publishFailures++
          if (error.reason === CircuitBreaker.OPEN_REASON) {
            bus.skipped++
            return Effect.void
          }
          return Effect.logWarning(`tiercache: ${error.message}`).pipe(
            Effect.annotateLogs({ cache: cacheName })
          )
        })
      )
    }

    // ---- input -----------------------------------------------------------------------------
    const resolveWrite = (opts: WriteOptions | undefined): ResolvedWrite | CacheInputError => {
      if (opts === undefined) return { ttlMs: defaultTtl, graceMs: defaultGrace, tags: [] }
      if (opts.ttl !== undefined && opts.strategy !== undefined) {
        return new CacheInputError({
          problem: "InvalidOption",
          reason: "give either ttl or strategy, not both"
        })
      }
      let ttlMs = defaultTtl
      if (opts.ttl !== undefined) {
        const t = durationMillis(opts.ttl, "ttl")
        if (typeof t !== "number") return t
        ttlMs = t
      } else if (opts.strategy !== undefined) {
        if (!CacheStrategy.isCacheStrategy(opts.strategy)) {
          return new CacheInputError({ problem: "InvalidOption", reason: "strategy must be a CacheStrategy" })
        }
        const t = durationMillis(CacheStrategy.toDurationInput(opts.strategy), "strategy TTL")
        if (typeof t !== "number") return t
        ttlMs = t
      }
      let graceMs = defaultGrace
      if (opts.grace !== undefined) {
        const g = durationMillis(opts.grace, "grace", true)
        if (typeof g !== "number") return g
        graceMs = g
      }
      const tags = opts.tags ?? []
      const bad = tagsError(tags) ?? lifetimeError(ttlMs, graceMs)
      if (bad) return bad
      return { ttlMs, graceMs, tags }
    }

    const resolveCompute = (opts: ComputeOptions | undefined): ResolvedCompute | CacheInputError => {
      const write = resolveWrite(opts)
      if (write instanceof CacheInputError) return write
      const t = opts?.timeouts === undefined ? defaultTimeouts : resolveTimeouts(opts.timeouts)
      if (t instanceof CacheInputError) return t
      return { ...write, softMs: t.softMs, hardMs: t.hardMs }
    }

    /** Encodes a value for storage: with the schema when given, then checks it is JSON-safe. */
    const encodeValue = (value: unknown, schema: AnySchema | undefined): unknown => {
      let encoded = value
      if (schema !== undefined) {
        const e = encoderOf(schema)(value)
        if (e._tag === "Left") {
          return new CacheInputError({
            problem: "UnencodableValue",
            reason: `value does not encode with the schema: ${firstLine(e.left.message)}`
          })
        }
        encoded = e.right
      }
      return jsonError(encoded) ?? new Encoded(encoded)
    }

    // ---- reads -----------------------------------------------------------------------------
    /** Decodes a slot's value under a schema, memoizing it in the slot; undefined when it does not decode. */
    const typedFromSlot = (slot: Slot, schema: AnySchema): Slot | undefined => {
      if (slot.typedSchema === schema) return slot
      const d = decoderOf(schema)(slot.entry.value)
      if (d._tag === "Left") {
        decodeErrors++
        return undefined
      }
      memoizeTyped(slot, schema, d.right)
      return slot
    }

    /** A fresh L1 slot, or undefined (for getMany). */
    const freshSlot = (key: string): Slot | undefined => {
      const t = now()
      const slot = lookupL1(key, t)
      return slot !== undefined && slot !== NEEDS_TAGS && t < slot.entry.expiresAt ? slot : undefined
    }

    /** Decodes an encoded value (untyped: as is); `undefined` result = did not decode. */
    /** `value` decoded for `schema` (as is without one), or NOT_DECODED (counted). */
    const decodeValue = (schema: AnySchema | undefined, value: unknown): unknown => {
      if (schema === undefined) return value
      const d = decoderOf(schema)(value)
      if (d._tag === "Left") {
        decodeErrors++
        return NOT_DECODED
      }
      return d.right
    }
    const decodeFor = (schema: AnySchema | undefined, value: unknown): { value: unknown } | undefined => {
      const decoded = decodeValue(schema, value)
      return decoded === NOT_DECODED ? undefined : { value: decoded }
    }

    /** An L1 entry (fresh or stale) through the generic Tier interface (an L1 that is not a MemoryTier). */
    const genericL1 = (key: string): Effect.Effect<Option.Option<Entry.Entry>> =>
      l1.get(key).pipe(
        Effect.catchAll((error) => Effect.as(recordTierError(0, error), Option.none<Entry.Entry>())),
        Effect.flatMap((found) =>
          found._tag === "None"
            ? Effect.succeed(found)
            : Effect.map(tagsOk(found.value), (ok) => (ok ? found : Option.none()))
        )
      )

    /** What an L1 entry offers: a fresh hit, a stale fallback, or nothing (also when it does not decode). */
    const classifyL1 = (entry: Entry.Entry, schema: AnySchema | undefined): Lookup => {
      const decoded = decodeFor(schema, entry.value)
      if (decoded === undefined) return noLookup
      const found: Found = { index: -1, result: { entry, value: decoded.value } }
      return Entry.isFresh(entry, now()) ? { hit: found, stale: undefined } : { hit: undefined, stale: found }
    }

    /** The stale candidate of a MemoryTier slot past its expiry (decoded for `schema`). */
    const staleFromSlot = (slot: Slot, schema: AnySchema | undefined): Found | undefined => {
      if (schema === undefined) return { index: -1, result: { entry: slot.entry, value: slot.entry.value } }
      const typed = typedFromSlot(slot, schema)
      return typed === undefined
        ? undefined
        : { index: -1, result: { entry: slot.entry, value: typed.typedValue } }
    }

    /**
     * Looks `key` up below L1, tier by tier; a fresh hit that decodes is promoted into every
     * tier above it (unless the key changed meanwhile). Also answers the first stale entry seen.
     */
    const lookupLower = (key: string, schema: AnySchema | undefined, guard: Guard): Effect.Effect<Lookup> =>
      Effect.gen(function* () {
        let stale: Found | undefined
        for (let i = 0; i < lower.length; i++) {
          const found = yield* lower[i]!.get(key).pipe(
            Effect.catchAll((error) => Effect.as(recordTierError(i + 1, error), Option.none<Entry.Entry>()))
          )
          if (found._tag === "None" || Entry.isGone(found.value, now())) continue
          if (!(yield* tagsOk(found.value))) continue
          const fresh = Entry.isFresh(found.value, now())
          if (!fresh && stale !== undefined) continue
          const decoded = decodeFor(schema, found.value.value)
          if (decoded === undefined) continue
          const result = { entry: found.value, value: decoded.value }
          if (!fresh) {
            stale = { index: i, result }
            continue
          }
          yield* promote(key, found.value, i, guard, schema, decoded.value)
          return { hit: { index: i, result }, stale }
        }
        return { hit: undefined, stale }
      })

    const promote = (
      key: string,
      entry: Entry.Entry,
      foundAt: number,
      guard: Guard,
      schema: AnySchema | undefined,
      decoded: unknown
    ): Effect.Effect<void> => {
      if (!unchanged(guard)) {
        discardedWrites++
        return Effect.void
      }
      const above = lower.slice(0, foundAt)
      return Effect.gen(function* () {
        const slot = yield* storeL1(key, entry).pipe(
          Effect.catchAll((error) => Effect.as(recordTierError(0, error), undefined))
        )
        if (slot !== undefined && schema !== undefined) memoizeTyped(slot, schema, decoded)
        yield* Effect.forEach(
          above,
          (tier, i) => tier.set(key, entry).pipe(Effect.catchAll((error) => recordTierError(i + 1, error))),
          { concurrency: "unbounded", discard: true }
        )
        promotions++
      })
    }

    /** Counts a request answered by `found` (L1 when its index is -1). */
    const countHit = (found: Found) => {
      if (found.index < 0) l1Hits++
      else tierHits[found.index]!++
    }

    /**
     * The answer of a read that went to the lower tiers: counts it and applies `allowStale`.
     */
    const answerLower = (
      found: Lookup,
      l1Stale: Found | undefined,
      allowStale: boolean
    ): Option.Option<unknown> => {
      if (found.hit !== undefined) {
        countHit(found.hit)
        return Option.some(found.hit.result.value)
      }
      const stale = l1Stale ?? found.stale
      if (allowStale && stale !== undefined) {
        countHit(stale)
        staleServed++
        return Option.some(stale.result.value)
      }
      misses++
      return Option.none()
    }

    /**
     * The usual shape, a MemoryTier L1 over one lower tier, read with a single Effect step: the
     * tier's answer is checked, decoded and promoted synchronously. (Effect steps cost more than
     * the rest of this path together; unknown tags take the general path.)
     */
    const single = fast !== undefined && lower.length === 1 ? lower[0]! : undefined
    const singleGuard = single !== undefined && guarded !== undefined ? guarded[0] : undefined
    const readSingle = (
      tier: Tier.Service,
      key: string,
      schema: AnySchema | undefined,
      allowStale: boolean,
      l1Stale: Found | undefined
    ): Effect.Effect<Option.Option<unknown>> => {
      // The guard, unpacked: no object per read.
      const stripe = stripeOf(key)
      const readEpoch = epoch
      const version = stripes[stripe]!
      // With the breaker closed over a tier that bounds itself, call the tier directly and keep
      // the breaker's count here: two Effect steps less on every L2 read.
      const direct = singleGuard?.selfBounded === true && singleGuard.state() === "closed"
      return Effect.matchEffect(direct ? singleGuard.inner.get(key) : tier.get(key), {
        onFailure: (error) =>
          Effect.as(
            direct
              ? Effect.zipRight(singleGuard.record(false), recordTierError(1, error))
              : recordTierError(1, error),
            answerLower(noLookup, l1Stale, allowStale)
          ),
        onSuccess: (found) => {
          // The breaker is closed: recording a success changes no state and logs nothing.
          if (direct) singleGuard.record(true)
          const t = now()
          if (found._tag === "None" || Entry.isGone(found.value, t)) {
            return Effect.succeed(answerLower(noLookup, l1Stale, allowStale))
          }
          const entry = found.value
          if (entry.tags.length > 0) {
            const valid = tagsValid(entry)
            if (valid === undefined) return readGeneral(key, schema, allowStale, l1Stale)
            if (!valid) return Effect.succeed(answerLower(noLookup, l1Stale, allowStale))
          }
          const value = decodeValue(schema, entry.value)
          if (value === NOT_DECODED) return Effect.succeed(answerLower(noLookup, l1Stale, allowStale))
          if (!Entry.isFresh(entry, t)) {
            const stale = { index: 0, result: { entry, value } }
            return Effect.succeed(answerLower({ hit: undefined, stale }, l1Stale, allowStale))
          }
          tierHits[0]!++
          if (readEpoch !== epoch || stripes[stripe] !== version) {
            discardedWrites++
            return Effect.succeed(Option.some(value))
          }
          promotions++
          const slot = fast!.store(key, l1Entry(entry, t))
          if (slot === undefined) return Effect.succeed(Option.some(value))
          // The answer the slot holds for hits is this caller's answer too.
          if (schema === undefined) return slot.some
          memoizeTyped(slot, schema, value)
          return slot.typedSome!
        }
      })
    }

    /** A read past the L1 fast path: generic L1, then the lower tiers; stale only when allowed. */
    const readSlow = (
      key: string,
      schema: AnySchema | undefined,
      allowStale: boolean,
      l1Stale: Found | undefined
    ): Effect.Effect<Option.Option<unknown>> =>
      single !== undefined
        ? readSingle(single, key, schema, allowStale, l1Stale)
        : readGeneral(key, schema, allowStale, l1Stale)

    const readGeneral = (
      key: string,
      schema: AnySchema | undefined,
      allowStale: boolean,
      l1Stale: Found | undefined
    ): Effect.Effect<Option.Option<unknown>> =>
      Effect.suspend(() => {
        const guard = guardOf(key)
        const fromL1: Effect.Effect<Lookup> =
          fast !== undefined
            ? Effect.succeed({ hit: undefined, stale: l1Stale })
            : Effect.map(genericL1(key), (e) => (e._tag === "None" ? noLookup : classifyL1(e.value, schema)))
        return Effect.flatMap(fromL1, (l1Found) => {
          if (l1Found.hit !== undefined) {
            l1Hits++
            return Effect.succeed(Option.some(l1Found.hit.result.value))
          }
          return Effect.map(lookupLower(key, schema, guard), (found) =>
            answerLower(found, l1Found.stale, allowStale)
          )
        })
      })

    const get = (key: string, opts?: ReadOptions): Effect.Effect<Option.Option<unknown>, CacheInputError> =>
      Effect.suspend(() => {
        if (isBadKey(key)) return Effect.fail(keyError(key)!)
        let l1Stale: Found | undefined
        if (fast !== undefined) {
          const t = now()
          const slot = lookupL1(key, t)
          if (slot === NEEDS_TAGS) return afterTags(key, () => get(key, opts))
          if (slot !== undefined) {
            if (t < slot.entry.expiresAt) {
              l1Hits++
              return slot.some
            }
            if (opts?.allowStale === true) {
              l1Hits++
              staleServed++
              return slot.some
            }
            l1Stale = staleFromSlot(slot, undefined)
          }
        }
        return readSlow(key, undefined, opts?.allowStale === true, l1Stale)
      })

    const getTyped = <A, I>(
      key: string,
      schema: Schema.Schema<A, I, never>,
      opts?: ReadOptions
    ): Effect.Effect<Option.Option<A>, CacheInputError> =>
      Effect.suspend(() => {
        if (isBadKey(key)) return Effect.fail(keyError(key)!)
        let l1Stale: Found | undefined
        if (fast !== undefined) {
          const t = now()
          const slot = lookupL1(key, t)
          if (slot === NEEDS_TAGS) return afterTags(key, () => getTyped(key, schema, opts))
          if (slot !== undefined) {
            const typed = typedFromSlot(slot, schema as AnySchema)
            if (typed !== undefined) {
              if (t < slot.entry.expiresAt) {
                l1Hits++
                return typed.typedSome as Exit.Exit<Option.Option<A>>
              }
              if (opts?.allowStale === true) {
                l1Hits++
                staleServed++
                return typed.typedSome as Exit.Exit<Option.Option<A>>
              }
              l1Stale = { index: -1, result: { entry: slot.entry, value: typed.typedValue } }
            }
          }
        }
        return readSlow(key, schema as AnySchema, opts?.allowStale === true, l1Stale) as Effect.Effect<
          Option.Option<A>
        >
      })

    const getMany = (
      keys: ReadonlyArray<string>,
      schema?: AnySchema
    ): Effect.Effect<ReadonlyArray<Option.Option<unknown>>, CacheInputError> =>
      Effect.suspend(() => {
        const bad = keysError(keys)
        if (bad) return Effect.fail(bad)
        const results: Array<Option.Option<unknown>> = new Array(keys.length)
        const pending: Array<number> = []
        for (let i = 0; i < keys.length; i++) {
          const slot = fast !== undefined ? freshSlot(keys[i]!) : undefined
          const typed = slot !== undefined && schema !== undefined ? typedFromSlot(slot, schema) : slot
          if (typed !== undefined) {
            l1Hits++
            results[i] = Option.some(schema !== undefined ? typed.typedValue : typed.entry.value)
          } else pending.push(i)
        }
        if (pending.length === 0) return Effect.succeed(results)
        return Effect.gen(function* () {
          const guards = pending.map((i) => guardOf(keys[i]!))
          let remaining = pending.map((i, j) => ({ i, guard: guards[j]! }))
          if (fast === undefined) {
            const found = yield* l1.getMany(remaining.map(({ i }) => keys[i]!)).pipe(
              Effect.catchAll((error) =>
                Effect.as(
                  recordTierError(0, error),
                  remaining.map(() => Option.none())
                )
              )
            )
            remaining = remaining.filter(({ i }, j) => {
              const entry = found[j]!
              if (entry._tag === "None" || !Entry.isFresh(entry.value, now())) return true
              const decoded = decodeFor(schema, entry.value.value)
              if (decoded === undefined) return true
              l1Hits++
              results[i] = Option.some(decoded.value)
              return false
            })
          }
          for (let t = 0; t < lower.length && remaining.length > 0; t++) {
            const tier = lower[t]!
            const found = yield* tier.getMany(remaining.map(({ i }) => keys[i]!)).pipe(
              Effect.catchAll((error) =>
                Effect.as(
                  recordTierError(t + 1, error),
                  remaining.map(() => Option.none<Entry.Entry>())
                )
              )
            )
            const still: typeof remaining = []
            for (let j = 0; j < remaining.length; j++) {
              const { i, guard } = remaining[j]!
              const entry = found[j]
              const decoded =
                entry !== undefined && entry._tag === "Some" && Entry.isFresh(entry.value, now())
                  ? decodeFor(schema, entry.value.value)
                  : undefined
              if (decoded === undefined || entry === undefined || entry._tag === "None") {
                still.push(remaining[j]!)
                continue
              }
              tierHits[t]!++
              results[i] = Option.some(decoded.value)
              yield* promote(keys[i]!, entry.value, t, guard, schema, decoded.value)
            }
            remaining = still
          }
          for (const { i } of remaining) {
            misses++
            results[i] = Option.none()
          }
          return results
        })
      })

    // ---- writes ----------------------------------------------------------------------------
    const write = (
      key: string,
      value: unknown,
      opts: TypedWriteOptions<unknown, unknown> | undefined,
      broadcastValue: boolean
    ): Effect.Effect<void, CacheError> =>
      Effect.suspend((): Effect.Effect<void, CacheError> => {
        const badKey = keyError(key)
        if (badKey) return Effect.fail(badKey)
        const resolved = resolveWrite(opts)
        if (resolved instanceof CacheInputError) return Effect.fail(resolved)
        const encoded = encodeValue(value, opts?.schema as AnySchema | undefined)
        if (encoded instanceof CacheInputError) return Effect.fail(encoded)
        const at = now()
        const entry = Entry.make({ value: (encoded as Encoded).value, now: at, ...resolved })
        return storeEverywhere(key, entry, opts?.schema as AnySchema | undefined, value, false).pipe(
          Effect.flatMap((failures) => failIfAllFailed(key, "set", failures)),
          Effect.zipRight(
            publish(
              broadcastValue
                ? {
                    type: "Update",
                    key,
                    value: entry.value,
                    ttl_secs: Math.ceil(resolved.ttlMs / 1000),
                    ttl_ms: resolved.ttlMs,
                    grace_ms: resolved.graceMs,
                    tags: resolved.tags,
                    origin: instanceId
                  }
                : { type: "Remove", key, origin: instanceId }
            )
          )
        )
      })

    /**
     * Writes an entry into every tier, bumping the key's version before and after so that no
     * read that overlapped the write promotes an older value over it.
     */
    const storeEverywhere = (
      key: string,
      entry: Entry.Entry,
      schema: AnySchema | undefined,
      decoded: unknown,
      fromFlight: boolean,
      afterL1?: () => void
    ): Effect.Effect<ReadonlyArray<TierError>> =>
      Effect.suspend(() => {
        bump(key)
        // A write from outside supersedes the computation under way; the flight's own store
        // keeps the flight registered until it is done, so that no caller starts another.
        if (!fromFlight) flights.delete(key)
        return onEveryTier(
          () =>
            Effect.map(storeL1(key, entry), (slot) => {
              if (slot !== undefined && schema !== undefined) memoizeTyped(slot, schema, decoded)
            }),
          (tier) => tier.set(key, entry),
          afterL1
        ).pipe(Effect.ensuring(Effect.sync(() => bump(key))))
      })

    const removeEverywhere = (
      label: string,
      operation: string,
      before: () => void,
      l1Op: () => Effect.Effect<void, TierError>,
      lowerOp: (tier: Tier.Service) => Effect.Effect<unknown, TierError>,
      message: InvalidationMessage
    ): Effect.Effect<void, CacheWriteError> =>
      Effect.suspend(() => {
        before()
        return onEveryTier(l1Op, lowerOp).pipe(
          Effect.ensuring(Effect.sync(before)),
          Effect.flatMap((failures) => failIfAllFailed(label, operation, failures)),
          Effect.zipRight(publish(message))
        )
      })

    const invalidate = (key: string): Effect.Effect<void, CacheError> =>
      Effect.suspend((): Effect.Effect<void, CacheError> => {
        const bad = keyError(key)
        if (bad) return Effect.fail(bad)
        return removeEverywhere(
          key,
          "invalidate",
          () => {
            bump(key)
            flights.delete(key)
          },
          () => removeL1([key]),
          (tier) => tier.remove([key]),
          { type: "Remove", key, origin: instanceId }
        )
      })

    const invalidateMany = (keys: ReadonlyArray<string>): Effect.Effect<void, CacheError> =>
      Effect.suspend((): Effect.Effect<void, CacheError> => {
        const bad = keysError(keys)
        if (bad) return Effect.fail(bad)
        if (keys.length === 0) return Effect.void
        const list = [...keys]
        return removeEverywhere(
          list.join(","),
          "invalidateMany",
          () => {
            for (const key of list) {
              bump(key)
              flights.delete(key)
            }
          },
          () => removeL1(list),
          (tier) => tier.remove(list),
          { type: "RemoveBulk", keys: list, origin: instanceId }
        )
      })

    const forgetFlightsMatching = (matches: (key: string) => boolean) => {
      epoch++
      for (const key of [...flights.keys()]) if (matches(key)) flights.delete(key)
    }

    const invalidatePattern = (glob: string): Effect.Effect<void, CacheError> =>
      Effect.suspend((): Effect.Effect<void, CacheError> => {
        const bad = patternError(glob)
        if (bad) return Effect.fail(bad)
        const matches = Glob.matcher(glob)
        return removeEverywhere(
          glob,
          "invalidatePattern",
          () => forgetFlightsMatching(matches),
          () =>
            fast !== undefined
              ? Effect.sync(() => void fast.removeWhere((key) => matches(key)))
              : l1.removeMatching(glob),
          (tier) => tier.removeMatching(glob),
          { type: "RemovePattern", pattern: glob, origin: instanceId }
        )
      })

    const clear: Effect.Effect<void, CacheWriteError> = removeEverywhere(
      "*",
      "clear",
      () => forgetFlightsMatching(() => true),
      () => (fast !== undefined ? Effect.sync(() => fast.clear()) : l1.clear),
      (tier) => tier.clear,
      { type: "Clear", origin: instanceId }
    )

    const invalidateTag = (tag: string): Effect.Effect<void, CacheError> =>
      Effect.suspend((): Effect.Effect<void, CacheError> => {
        const bad = tagError(tag)
        if (bad) return Effect.fail(bad)
        const at = now()
        const record = Entry.make({ value: at, now: at, ttlMs: tagRetention })
        const before = () => {
          forgetFlightsMatching(() => true)
          tagTimes.set(tag, Math.max(tagTimes.get(tag) ?? NEVER, at))
        }
        before()
        return onEveryTier(
          () =>
            fast !== undefined
              ? Effect.sync(() => void fast.removeWhere((_, slot) => slot.entry.tags.includes(tag)))
              : Effect.void,
          (tier) => tier.set(TAG_PREFIX + tag, record)
        ).pipe(
          Effect.ensuring(Effect.sync(before)),
          Effect.tap(() => publish({ type: "RemoveTag", tag, at, origin: instanceId })),
          Effect.flatMap((failures) => {
            // The time must reach a shared tier, or the tagged entries there would come back.
            if (failures.length < lower.length) return Effect.void
            writeFailures++
            return Effect.fail(new CacheWriteError({ key: tag, operation: "invalidateTag", failures }))
          })
        )
      })

    // ---- getOrCompute ----------------------------------------------------------------------
    /**
     * Joins the flight under way for `key`, or starts one: the flight reads the lower tiers,
     * then computes and stores. It runs in a fiber of the cache's scope, so the caller's
     * interruption only stops its own wait. With a stale L1 copy and stale-while-revalidate,
     * the caller gets the stale value at once and the flight refreshes it in the background.
     */
    const lead = <A, E, R>(
      key: string,
      schema: AnySchema | undefined,
      compute: Effect.Effect<A, E, R>,
      opts: ComputeOptions | undefined,
      counted: boolean,
      l1Stale: Found | undefined
    ): Effect.Effect<A, E | CacheError, R> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend((): Effect.Effect<A, E | CacheError, R> => {
          const badCompute = computeError(compute)
          if (badCompute) return Effect.fail(badCompute)
          const resolved = resolveCompute(opts)
          if (resolved instanceof CacheInputError) return Effect.fail(resolved)
          const serveStale = l1Stale !== undefined && staleWhileRevalidate
          const existing = flights.get(key)
          if (existing !== undefined) {
            if (serveStale) return Effect.succeed(answerStale(l1Stale, counted) as A)
            if (counted) coalesced++
            return restore(join(key, existing, schema, compute, opts, resolved))
          }
          const flight: Flight = {
            deferred: Deferred.unsafeMake(FiberId.none),
            schema,
            stale: l1Stale?.result,
            settled: false,
            writing: false,
            fiber: undefined
          }
          flights.set(key, flight)
          const body = runFlight(key, flight, compute, resolved, counted && !serveStale).pipe(
            Effect.interruptible,
            Effect.onExit((exit) =>
              Effect.sync(() => {
                if (flights.get(key) === flight) flights.delete(key)
                Deferred.unsafeDone(flight.deferred, exit)
              })
            )
          )
          const started = Effect.map(Effect.forkIn(body, flightScope), (fiber) => {
            flight.fiber = fiber
          })
          if (serveStale) return Effect.as(started, answerStale(l1Stale, counted) as A)
          return Effect.zipRight(
            started,
            restore(awaitFlight(key, flight, resolved.hardMs) as Effect.Effect<A, E>)
          )
        })
      )

    const answerStale = (stale: Found, counted: boolean): unknown => {
      if (counted) l1Hits++
      staleServed++
      return stale.result.value
    }

    /** Waits for a flight's result; past the hard timeout, a stale value answers, or a CacheTimeoutError. */
    const awaitFlight = (
      key: string,
      flight: Flight,
      hardMs: number | undefined
    ): Effect.Effect<unknown, unknown> => {
      const result = Effect.map(Deferred.await(flight.deferred), (r) => r.value)
      if (hardMs === undefined) return result
      return Effect.timeoutFail(result, {
        duration: hardMs,
        onTimeout: () => new CacheTimeoutError({ key, timeoutMs: hardMs })
      }).pipe(
        Effect.catchIf(
          (e): e is CacheTimeoutError => e instanceof CacheTimeoutError,
          (e) =>
            Effect.suspend(() => {
              timeouts++
              if (flight.stale === undefined) return Effect.fail(e)
              failSafeHits++
              staleServed++
              return Effect.succeed(flight.stale.value)
            })
        )
      )
    }

    /** Waits for another caller's flight; with another schema, decodes its entry (or computes anew). */
    const join = <A, E, R>(
      key: string,
      flight: Flight,
      schema: AnySchema | undefined,
      compute: Effect.Effect<A, E, R>,
      opts: ComputeOptions | undefined,
      resolved: ResolvedCompute
    ): Effect.Effect<A, E | CacheError, R> =>
      Effect.flatMap(awaitFlight(key, flight, resolved.hardMs) as Effect.Effect<unknown, E>, (value) => {
        if (schema === flight.schema) return Effect.succeed(value as A)
        return Effect.flatMap(Deferred.await(flight.deferred) as Effect.Effect<FlightResult, E>, (result) => {
          const decoded = decodeFor(schema, result.entry.value)
          return decoded !== undefined
            ? Effect.succeed(decoded.value as A)
            : lead(key, schema, compute, opts, false, undefined)
        })
      })

    /** Answers a flight's waiters now with its stale value (the computation goes on). */
    const settleWithStale = (flight: Flight): void => {
      if (flight.stale !== undefined && settle(flight, flight.stale)) staleServed++
    }

    /** Answers a flight's waiters now, once; answers whether this call did. */
    const settle = (flight: Flight, result: FlightResult): boolean => {
      if (flight.settled) return false
      flight.settled = true
      Deferred.unsafeDone(flight.deferred, Exit.succeed(result))
      return true
    }

    const runFlight = <A, E, R>(
      key: string,
      flight: Flight,
      compute: Effect.Effect<A, E, R>,
      resolved: ResolvedCompute,
      counted: boolean
    ): Effect.Effect<FlightResult, E | CacheError, R> =>
      Effect.gen(function* () {
        const guard = guardOf(key)
        // A computed value is as old as the data it read: it is dated from the flight's start,
        // so that a tag invalidated while it ran also invalidates it.
        const startedAt = now()
        if (fast === undefined && flight.stale === undefined) {
          const e = yield* genericL1(key)
          if (e._tag === "Some") flight.stale = classifyL1(e.value, flight.schema).stale?.result
        }
        const found = yield* lookupLower(key, flight.schema, guard)
        if (found.hit !== undefined) {
          if (counted) countHit(found.hit)
          return found.hit.result
        }
        if (counted) misses++
        if (flight.stale === undefined && found.stale !== undefined) {
          flight.stale = found.stale.result
          if (staleWhileRevalidate) settleWithStale(flight)
        }
        computations++
        const running = yield* Effect.fork(
          Effect.tapErrorCause(compute, (cause) =>
            Cause.isInterruptedOnly(cause) ? Effect.void : Effect.sync(() => computeErrors++)
          )
        )
        if (resolved.softMs !== undefined && flight.stale !== undefined) {
          yield* Effect.fork(
            Effect.sleep(resolved.softMs).pipe(Effect.andThen(() => settleWithStale(flight)))
          )
        }
        const exit = yield* Fiber.await(running)
        if (Exit.isFailure(exit)) {
          if (flight.stale === undefined || Cause.isInterruptedOnly(exit.cause) || failSafeThrottle === 0) {
            return yield* Effect.failCause(exit.cause)
          }
          return yield* failSafe(key, flight, flight.stale, guard, exit.cause)
        }
        const value = exit.value
        const encoded = encodeValue(value, flight.schema)
        if (encoded instanceof CacheInputError) return yield* encoded
        const entry: Entry.Entry = {
          ...Entry.make({ value: (encoded as Encoded).value, now: now(), ...resolved }),
          createdAt: startedAt
        }
        if (!unchanged(guard)) {
          discardedWrites++
          yield* Effect.logDebug("tiercache: key changed during computation; result not stored").pipe(
            Effect.annotateLogs({ key, cache: cacheName })
          )
          return { entry, value }
        }
        const result: FlightResult = { entry, value: flight.schema === undefined ? entry.value : value }
        // The waiters are answered once L1 holds the value; the lower tiers are written after,
        // while the flight stays registered (no caller computes again meanwhile), so that a slow
        // or failing shared tier never delays the answer.
        const failures = yield* storeEverywhere(key, entry, flight.schema, value, true, () => {
          flight.writing = true
          settle(flight, result)
        })
        if (failures.length === lower.length + 1) {
          writeFailures++
          yield* Effect.logWarning("tiercache: computed value could not be stored in any tier").pipe(
            Effect.annotateLogs({ key, cache: cacheName })
          )
        }
        yield* publish({ type: "Remove", key, origin: instanceId })
        return result
      }).pipe(
        Effect.withSpan("tiercache.getOrCompute", {
          attributes: { key, cache: cacheName },
          captureStackTrace: false
        })
      )

    /**
     * The computation failed and a stale value exists: answer with it, and keep it in L1 as
     * fresh for the fail-safe throttle so that a failing source is not hammered.
     */
    const failSafe = (
      key: string,
      flight: Flight,
      stale: FlightResult,
      guard: Guard,
      cause: Cause.Cause<unknown>
    ): Effect.Effect<FlightResult> =>
      Effect.gen(function* () {
        failSafeHits++
        settleWithStale(flight)
        yield* Effect.logWarning("tiercache: computation failed; serving the stale value", cause).pipe(
          Effect.annotateLogs({ key, cache: cacheName })
        )
        if (unchanged(guard)) {
          const t = now()
          const kept: Entry.Entry = {
            value: stale.entry.value,
            expiresAt: t + failSafeThrottle,
            staleUntil: Math.max(stale.entry.staleUntil, t + failSafeThrottle),
            tags: stale.entry.tags,
            createdAt: stale.entry.createdAt
          }
          const slot = yield* storeL1(key, kept).pipe(
            Effect.catchAll((error) => Effect.as(recordTierError(0, error), undefined))
          )
          if (slot !== undefined && flight.schema !== undefined)
            memoizeTyped(slot, flight.schema, stale.value)
        }
        return stale
      })

    const getOrCompute = <A, E, R>(
      key: string,
      compute: Effect.Effect<A, E, R>,
      opts?: ComputeOptions
    ): Effect.Effect<A, E | CacheError, R> =>
      Effect.suspend(() => {
        if (isBadKey(key)) return Effect.fail(keyError(key)!)
        if (fast !== undefined) {
          const t = now()
          const slot = lookupL1(key, t)
          if (slot === NEEDS_TAGS) return afterTags(key, () => getOrCompute(key, compute, opts))
          if (slot === undefined) return lead(key, undefined, compute, opts, true, undefined)
          if (t < slot.entry.expiresAt) {
            l1Hits++
            return slot.valueExit as Exit.Exit<A>
          }
          return lead(key, undefined, compute, opts, true, staleFromSlot(slot, undefined))
        }
        return Effect.flatMap(genericL1(key), (e) => {
          const found = e._tag === "None" ? noLookup : classifyL1(e.value, undefined)
          if (found.hit !== undefined) {
            l1Hits++
            return Effect.succeed(found.hit.result.value as A)
          }
          return lead(key, undefined, compute, opts, true, found.stale)
        })
      })

    const getOrComputeTyped = <A, I, E, R>(
      key: string,
      schema: Schema.Schema<A, I, never>,
      compute: Effect.Effect<A, E, R>,
      opts?: ComputeOptions
    ): Effect.Effect<A, E | CacheError, R> =>
      Effect.suspend(() => {
        if (isBadKey(key)) return Effect.fail(keyError(key)!)
        const s = schema as AnySchema
        if (fast !== undefined) {
          const t = now()
          const slot = lookupL1(key, t)
          if (slot === NEEDS_TAGS) return afterTags(key, () => getOrComputeTyped(key, schema, compute, opts))
          if (slot === undefined) return lead(key, s, compute, opts, true, undefined)
          const typed = typedFromSlot(slot, s)
          if (typed === undefined) return lead(key, s, compute, opts, true, undefined)
          if (t < slot.entry.expiresAt) {
            l1Hits++
            return typed.typedExit as Exit.Exit<A>
          }
          return lead(key, s, compute, opts, true, {
            index: -1,
            result: { entry: slot.entry, value: typed.typedValue }
          })
        }
        return Effect.flatMap(genericL1(key), (e) => {
          const found = e._tag === "None" ? noLookup : classifyL1(e.value, s)
          if (found.hit !== undefined) {
            l1Hits++
            return Effect.succeed(found.hit.result.value as A)
          }
          return lead(key, s, compute, opts, true, found.stale)
        })
      })

    // ---- the bus ---------------------------------------------------------------------------
    const applyRemote = (message: InvalidationMessage): Effect.Effect<void, TierError> => {
      switch (message.type) {
        case "Remove":
          flights.delete(message.key)
          return Effect.ensuring(
            removeL1([message.key]),
            Effect.sync(() => bump(message.key))
          )
        case "RemoveBulk":
          for (const key of message.keys) flights.delete(key)
          return Effect.ensuring(
            removeL1(message.keys),
            Effect.sync(() => {
              for (const key of message.keys) bump(key)
            })
          )
        case "Update": {
          flights.delete(message.key)
          const ttlMs = message.ttl_ms ?? (message.ttl_secs != null ? message.ttl_secs * 1000 : defaultTtl)
          if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) return removeL1([message.key])
          const entry = Entry.make({
            value: message.value,
            now: now(),
            ttlMs,
            graceMs: message.grace_ms,
            tags: message.tags
          })
          return Effect.ensuring(
            Effect.asVoid(storeL1(message.key, entry)),
            Effect.sync(() => bump(message.key))
          )
        }
        case "RemovePattern": {
          const matches = Glob.matcher(message.pattern)
          forgetFlightsMatching(matches)
          return Effect.ensuring(
            fast !== undefined
              ? Effect.sync(() => void fast.removeWhere((key) => matches(key)))
              : Effect.asVoid(l1.removeMatching(message.pattern)),
            Effect.sync(() => epoch++)
          )
        }
        case "RemoveTag": {
          forgetFlightsMatching(() => true)
          tagTimes.set(message.tag, Math.max(tagTimes.get(message.tag) ?? NEVER, message.at ?? now()))
          return Effect.ensuring(
            fast !== undefined
              ? Effect.sync(() => void fast.removeWhere((_, slot) => slot.entry.tags.includes(message.tag)))
              : Effect.void,
            Effect.sync(() => epoch++)
          )
        }
        case "Clear":
          return clearL1
      }
    }

    const clearL1: Effect.Effect<void, TierError> = Effect.suspend(() => {
      forgetFlightsMatching(() => true)
      tagTimes.clear()
      return Effect.ensuring(
        fast !== undefined ? Effect.sync(() => fast.clear()) : l1.clear,
        Effect.sync(() => epoch++)
      )
    })

    const onEvent = (event: Event): Effect.Effect<void> => {
      switch (event._tag) {
        case "Reconnected":
          bus.resyncs++
          return clearL1.pipe(
            Effect.zipRight(Effect.logInfo("tiercache: bus reconnected; L1 cleared")),
            Effect.catchAll((error) => recordTierError(0, error)),
            Effect.annotateLogs({ cache: cacheName })
          )
        case "Malformed":
          bus.received++
          bus.malformed++
          return Effect.logWarning(`tiercache: malformed bus message skipped: ${event.reason}`).pipe(
            Effect.annotateLogs({ cache: cacheName })
          )
        case "Message":
          bus.received++
          if (event.message.origin === instanceId) {
            bus.own++
            return Effect.void
          }
          bus.applied++
          return applyRemote(event.message).pipe(Effect.catchAll((error) => recordTierError(0, error)))
      }
    }

    if (busOption._tag === "Some") {
      const events = yield* busOption.value.subscribe
      yield* Effect.forkScoped(Stream.runForEach(events, onEvent))
    }

    // ---- observation -----------------------------------------------------------------------
    const snapshot = (): CacheStats => {
      const lowerHits = tierHits.reduce((a, b) => a + b, 0)
      const requests = l1Hits + lowerHits + coalesced + misses
      return {
        requests,
        l1Hits,
        l2Hits: tierHits[0] ?? 0,
        tierHits: [...tierHits],
        coalesced,
        misses,
        hitRate: requests === 0 ? 0 : (l1Hits + lowerHits) / requests,
        l1HitRate: requests === 0 ? 0 : l1Hits / requests,
        promotions,
        computations,
        computeErrors,
        decodeErrors,
        tierErrors: Object.fromEntries(tierErrors),
        writeFailures,
        discardedWrites,
        staleServed,
        failSafeHits,
        timeouts,
        breakerRejections,
        breakers: Object.fromEntries(
          (guarded ?? []).map((tier, i) => [labels[i + 1]!, tier.state()] as const)
        ),
        inFlight: flights.size
      }
    }

    const busSnapshot = (): InvalidationStats => ({
      enabled: busOption._tag === "Some",
      messagesSent: bus.sent,
      publishFailures: bus.publishFailures,
      publishesSkipped: bus.skipped,
      breaker: busBreaker?.state(),
      messagesReceived: bus.received,
      ownMessagesIgnored: bus.own,
      malformedMessages: bus.malformed,
      messagesApplied: bus.applied,
      resyncs: bus.resyncs
    })

    const flush = makeFlusher(cacheName)
    const flushMetrics = Effect.suspend(() => flush(snapshot(), busSnapshot()))
    const stats: Effect.Effect<CacheStats> = Effect.suspend(() => {
      const s = snapshot()
      return Effect.as(flush(s, busSnapshot()), s)
    })
    const invalidationStats: Effect.Effect<InvalidationStats> = Effect.sync(busSnapshot)
    if (metricsInterval !== undefined) {
      yield* Effect.forkScoped(Effect.repeat(flushMetrics, Schedule.spaced(metricsInterval)))
    }
    yield* Effect.addFinalizer(() => flushMetrics)

    // ---- shutdown ----------------------------------------------------------------------------
    // A getOrCompute answers as soon as L1 holds the value; its lower-tier writes and bus
    // message follow. Closing the cache waits for those (each bounded by its tier's timeout;
    // all together by DRAIN_TIMEOUT), so a value computed before a graceful shutdown is in L2
    // for the next process. Computations still running are interrupted.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        const writing: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
        for (const flight of flights.values()) if (flight.writing && flight.fiber) writing.push(flight.fiber)
        if (writing.length === 0) return Effect.void
        return Effect.forEach(writing, Fiber.await, {
          concurrency: "unbounded",
          discard: true
        }).pipe(
          Effect.timeoutTo({
            duration: DRAIN_TIMEOUT,
            onSuccess: () => Effect.void,
            onTimeout: () =>
              Effect.logWarning(
                "cache closed with lower-tier writes still in flight; they were interrupted"
              ).pipe(Effect.annotateLogs({ cache: cacheName }))
          }),
          Effect.flatten
        )
      }).pipe(Effect.zipRight(Scope.close(flightScope, Exit.void)))
    )

    const health: Effect.Effect<CacheHealth> = Effect.map(
      Effect.forEach([l1, ...lower], (tier) => tier.health, { concurrency: "unbounded" }),
      (tiers) => ({
        status: !tiers[0]!.healthy ? "unhealthy" : tiers.every((t) => t.healthy) ? "healthy" : "degraded",
        tiers,
        bus: busOption._tag === "Some"
      })
    )

    const service: TieredCache.Service = {
      instanceId,
      get,
      getTyped,
      getMany: getMany as TieredCache.Service["getMany"],
      set: (key, value, opts) =>
        write(key, value, opts as TypedWriteOptions<unknown, unknown> | undefined, false),
      update: (key, value, opts) =>
        write(key, value, opts as TypedWriteOptions<unknown, unknown> | undefined, true),
      getOrCompute,
      getOrComputeTyped,
      invalidate,
      invalidateMany,
      invalidatePattern,
      invalidateTag,
      clear,
      stats,
      invalidationStats,
      health
    }
    return service
  })

/** A successfully encoded value (a class, so that it cannot be confused with a user's value). */
class Encoded {
  constructor(readonly value: unknown) {}
}

const labelTiers = (tiers: ReadonlyArray<Tier.Service>): ReadonlyArray<string> => {
  const counts = new Map<string, number>()
  for (const t of tiers) counts.set(t.name, (counts.get(t.name) ?? 0) + 1)
  return tiers.map((t, i) => ((counts.get(t.name) ?? 0) > 1 ? `${t.name}#${i + 1}` : t.name))
}
