/**
 * The composition root: builds each part of the cache from an explicit record of what it
 * needs, and keeps the L1 hit paths (get, getTyped, getOrCompute, getOrComputeTyped) together
 * here, where a hit costs one lookup and a counter (and `lookup.judgeSlot` for an entry with
 * tags, a schema, or past its TTL): no Effect step, no allocation. Everything past an L1 hit
 * lives in its own module.
 *
 * Shutdown order (finalizers run in reverse): the lower-tier writes of values already
 * delivered are awaited (at most DRAIN_TIMEOUT, drain.ts), then running computations are
 * interrupted; the bus subscriber stops; the metrics are pushed a last time.
 */
import { Effect, ExecutionStrategy, type Exit, Option, Scope } from "effect"
import type { BusError, CacheConfigError, CacheInputError, CacheTimeoutError } from "../CacheError.js"
import { InvalidationBus } from "../InvalidationBus.js"
import { isMemoryTier } from "../MemoryTier.js"
import { L1, L2, Tiers } from "../Tier.js"
import type { ComputeOptions, Options, ReadOptions, TieredCache, TypedWriteOptions } from "../TieredCache.js"
import * as Bus from "./bus.js"
import * as BusSubscriber from "./busSubscriber.js"
import * as Changes from "./changes.js"
import type { AnySchema } from "./codec.js"
import * as Counters from "./counters.js"
import * as Drain from "./drain.js"
import { isPlainFresh, type Slot } from "./fastPath.js"
import * as Flight from "./flight.js"
import * as Flights from "./flights.js"
import * as GetMany from "./getMany.js"
import { allowStaleOf, checkKey } from "./input.js"
import * as Invalidations from "./invalidations.js"
import * as LateUpdates from "./lateUpdates.js"
import * as LocalWrites from "./localWrites.js"
import * as Lookup from "./lookup.js"
import * as Observation from "./observation.js"
import * as OptionsModule from "./options.js"
import * as PendingStores from "./pendingStores.js"
import { plainTier } from "./plainTier.js"
import * as Promotion from "./promotion.js"
import * as Reads from "./reads.js"
import * as Recovery from "./recovery.js"
import * as Replay from "./replay.js"
import * as Resilience from "./resilience.js"
import * as Spans from "./spans.js"
import * as Tags from "./tags.js"
import * as TierAccess from "./tierAccess.js"
import { shield } from "./tierDefects.js"
import { unchecked } from "./tierInput.js"
import { checkSchema, isBadKey } from "./validate.js"
import * as Versions from "./versions.js"
import * as Writes from "./writes.js"

const { FRESH, STALE, NEEDS_TAGS } = Lookup

/** @internal */
export const make = (
  options: Options = {}
): Effect.Effect<TieredCache.Service, CacheConfigError | BusError, L1 | L2 | Scope.Scope> =>
  Effect.gen(function* () {
    const config = yield* OptionsModule.resolve(options)
    // The tiers as they are, without the checks of direct calls (tierInput.ts): the cache checks
    // its callers' input itself.
    // A tier written as a class is made an object of its own fields (plainTier.ts): the cache's
    // wrappers spread it.
    // Every tier's defects are its failures (tierDefects.ts); a MemoryTier L1, whose hits take
    // its fast path, is the package's own and cannot die.
    const given = plainTier(unchecked(yield* L1))
    const l1 = isMemoryTier(given) ? given : shield(given)
    const l2 = shield(plainTier(unchecked(yield* L2)))
    const extra = Option.map(yield* Effect.serviceOption(Tiers), (tiers) =>
      tiers.map((tier) => shield(plainTier(unchecked(tier))))
    )
    const busOption = yield* Effect.serviceOption(InvalidationBus)
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    const now = () => clock.unsafeCurrentTimeMillis()
    // Computations run in a scope of their own, closed by the cache's last finalizer once the
    // lower-tier writes of delivered values are done.
    const flightScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    const { cacheName, instanceId } = config

    const lowerTiers = [l2, ...Option.getOrElse(extra, () => [])]
    const counters = Counters.make(lowerTiers.length)
    // Tracing is chosen once here: `spans: false` builds no tracing code at all.
    const spans = config.spans === false ? undefined : Spans.make(config.spans, config.keysInSpans)
    // Changes that missed a lower tier or the bus, replayed when the connection is back; until
    // then this instance's lower-tier reads see them first (recovery.ts, replay.ts).
    const record =
      config.recovery === false
        ? undefined
        : Recovery.makeRecord(config.recovery.maxChanges, now, () => {
            counters.recoveryClears++
          })
    const access = yield* TierAccess.make({
      l1,
      lower: lowerTiers,
      recovery: record === undefined ? undefined : { gate: record.gate, keeps: () => record.size() > 0 },
      breaker: config.breaker,
      counters,
      cacheName,
      l1Scale: config.l1Scale,
      now,
      spans
    })
    const fast = access.fast
    const versions = Versions.make()
    const tags = Tags.make(access, now)
    const lookup = Lookup.make({ tags, versions, counters, now, dropL1: (key) => fast?.remove(key) })
    const publisher = yield* Bus.makePublisher(busOption, config.breaker, counters, cacheName, spans)
    // The lower-tier writes of computed and promoted values under way, which changes wait for.
    const pending = PendingStores.make(PendingStores.boundOf(access.lower, "1 second"), clock)
    const promotion = Promotion.make({ access, lookup, counters, pending, send: publisher.send, instanceId })
    const reads = Reads.make({ access, lookup, tags, promotion, versions, counters, now })
    const getMany = GetMany.make({ access, lookup, tags, promotion, versions, counters, now })
    const registry = Flight.makeRegistry()
    const recovery = yield* Replay.make({
      record,
      access,
      publisher,
      counters,
      instanceId,
      cacheName,
      retryInterval: config.recovery === false ? 0 : config.recovery.retryInterval,
      now
    })
    const changeDeps: Changes.Deps = {
      access,
      versions,
      registry,
      tags,
      counters,
      defaults: config,
      tagRetention: config.tagRetention,
      instanceId,
      recovery,
      send: publisher.send,
      busSequence: publisher.sequence,
      sendNow: publisher.now,
      pending,
      now,
      lateUpdates: LateUpdates.make()
    }
    const changes = Changes.make(changeDeps)
    const writes = Writes.make(changeDeps, changes)
    const invalidations = Invalidations.make(changeDeps, changes)
    const resilience = Resilience.make({
      access,
      lookup,
      counters,
      pending,
      failSafeThrottle: config.failSafeThrottle,
      cacheName,
      keysInSpans: config.keysInSpans,
      now,
      clock
    })
    const flights = Flights.make({
      registry,
      reads,
      resilience,
      versions,
      counters,
      defaults: config,
      staleWhileRevalidate: config.staleWhileRevalidate,
      genericL1: fast === undefined,
      storeComputed: writes.storeComputed,
      tierCount: access.lower.length + 1,
      cacheName,
      keysInSpans: config.keysInSpans,
      spans,
      now
    })
    // The flights' fibers belong to the cache: closing the flight scope interrupts them.
    yield* Scope.addFinalizer(flightScope, flights.interruptAll)
    // Made before the bus subscriber: its last push of the metrics, on close, then comes after the
    // subscriber has stopped, so a message received as the cache closes is counted there too.
    const observation = yield* Observation.make({
      counters,
      access,
      underWay: flights.underWay,
      publisher,
      recovery,
      cacheName,
      metricsInterval: config.metricsInterval
    })
    if (busOption._tag === "Some") {
      yield* BusSubscriber.subscribe(busOption.value, {
        local: LocalWrites.make(changeDeps, changes),
        counters,
        instanceId,
        cacheName,
        defaultTtl: config.defaultTtl,
        now,
        recordL1Error: (error) => access.recordError(0, error),
        beforeResync: recovery.onReady
      })
    }
    yield* Drain.onClose(registry, flightScope, cacheName, clock)

    // ---- the L1 hit paths ------------------------------------------------------------------
    /** Reads the tags of an L1 slot, then judges it again (unknown tags are then a miss). */
    const afterTags = <A, E, R>(
      key: string,
      slot: Slot,
      schema: AnySchema | undefined,
      then: (verdict: Lookup.Verdict, t: number) => Effect.Effect<A, E, R>
    ): Effect.Effect<A, E, R> =>
      Effect.zipRight(
        tags.load(slot.tags),
        Effect.suspend(() => {
          const t = now()
          return then(lookup.judgeSlot(key, slot, t, schema, true), t)
        })
      )

    const badKey = (key: unknown) => Effect.fail(checkKey(key)!)

    const read = (
      key: string,
      schema: AnySchema | undefined,
      opts: ReadOptions | undefined
    ): Effect.Effect<Option.Option<unknown>, CacheInputError> => {
      if (isBadKey(key)) return badKey(key)
      let allowStale = false
      if (opts !== undefined) {
        const given = allowStaleOf(opts)
        if (typeof given !== "boolean") return Effect.fail(given)
        allowStale = given
      }
      if (fast === undefined) return reads.readSlow(key, schema, allowStale, undefined)
      const t = now()
      const slot = fast.lookup(key, t)
      if (slot === undefined) return reads.readSlow(key, schema, allowStale, undefined)
      // The usual hit (untyped, untagged, fresh) decided here.
      if (schema === undefined && isPlainFresh(slot, t)) {
        counters.l1Hits++
        return slot.some
      }
      return fromSlot(key, slot, schema, allowStale, lookup.judgeSlot(key, slot, t, schema, false))
    }
    const fromSlot = (
      key: string,
      slot: Slot,
      schema: AnySchema | undefined,
      allowStale: boolean,
      verdict: Lookup.Verdict
    ): Effect.Effect<Option.Option<unknown>> => {
      if (verdict === FRESH || (verdict === STALE && allowStale)) {
        counters.l1Hits++
        if (verdict === STALE) counters.staleServed++
        return schema === undefined ? slot.some : slot.typedSome!
      }
      if (verdict === NEEDS_TAGS) {
        return afterTags(key, slot, schema, (v) => fromSlot(key, slot, schema, allowStale, v))
      }
      const stale =
        verdict === STALE
          ? { index: 0, entry: slot, value: schema === undefined ? slot.value : slot.typedValue }
          : undefined
      return reads.readSlow(key, schema, allowStale, stale)
    }

    const compute = <A, E, R>(
      key: string,
      schema: AnySchema | undefined,
      computation: Effect.Effect<A, E, R>,
      opts: ComputeOptions | undefined
    ): Effect.Effect<A, E | CacheInputError | CacheTimeoutError, R> => {
      if (isBadKey(key)) return badKey(key)
      if (fast === undefined) {
        return Effect.flatMap(reads.genericL1(key, schema), (found) => {
          if (found.hit !== undefined) {
            counters.l1Hits++
            return Effect.succeed(found.hit.value as A)
          }
          return flights.lead(key, schema, computation, opts, true, found.stale, true)
        })
      }
      const t = now()
      const slot = fast.lookup(key, t)
      if (slot === undefined) return flights.lead(key, schema, computation, opts, true, undefined)
      if (schema === undefined && isPlainFresh(slot, t)) {
        counters.l1Hits++
        return slot.valueExit as Exit.Exit<A>
      }
      return computeFromSlot(
        key,
        slot,
        schema,
        computation,
        opts,
        lookup.judgeSlot(key, slot, t, schema, false)
      )
    }
    const computeFromSlot = <A, E, R>(
      key: string,
      slot: Slot,
      schema: AnySchema | undefined,
      computation: Effect.Effect<A, E, R>,
      opts: ComputeOptions | undefined,
      verdict: Lookup.Verdict
    ): Effect.Effect<A, E | CacheInputError | CacheTimeoutError, R> => {
      if (verdict === FRESH) {
        counters.l1Hits++
        return (schema === undefined ? slot.valueExit : slot.typedExit!) as Exit.Exit<A>
      }
      if (verdict === NEEDS_TAGS) {
        return afterTags(key, slot, schema, (v) => computeFromSlot(key, slot, schema, computation, opts, v))
      }
      const stale =
        verdict === STALE
          ? { index: 0, entry: slot, value: schema === undefined ? slot.value : slot.typedValue }
          : undefined
      return flights.lead(key, schema, computation, opts, true, stale)
    }

    const service: TieredCache.Service = {
      instanceId,
      get: (key, opts) => Effect.suspend(() => read(key, undefined, opts)),
      getTyped: (key, schema, opts) =>
        Effect.suspend(() => {
          const bad = checkSchema(schema)
          return bad ? Effect.fail(bad) : read(key, schema as AnySchema, opts)
        }) as Effect.Effect<Option.Option<never>, CacheInputError>,
      getMany: getMany as TieredCache.Service["getMany"],
      // A change, once called, runs to its end (each tier's and the bus's calls are bounded by
      // their timeouts, which run apart from the caller: timeout.ts): interrupted half-way, it
      // would leave this instance's L1, the lower tiers and the other instances disagreeing.
      set: (key, value, opts) =>
        Effect.uninterruptible(
          writes.set(key, value, opts as TypedWriteOptions<unknown, unknown> | undefined)
        ),
      update: (key, value, opts) =>
        Effect.uninterruptible(
          writes.update(key, value, opts as TypedWriteOptions<unknown, unknown> | undefined)
        ),
      getOrCompute: (key, computation, opts) =>
        Effect.suspend(() => compute(key, undefined, computation, opts)),
      getOrComputeTyped: (key, schema, computation, opts) =>
        Effect.suspend(() => {
          const bad = checkSchema(schema)
          return bad ? Effect.fail(bad) : compute(key, schema as AnySchema, computation, opts)
        }),
      invalidate: (key) => Effect.uninterruptible(invalidations.invalidate(key)),
      invalidateMany: (keys) => Effect.uninterruptible(invalidations.invalidateMany(keys)),
      invalidatePattern: (glob) => Effect.uninterruptible(invalidations.invalidatePattern(glob)),
      invalidateTag: (tag) => Effect.uninterruptible(invalidations.invalidateTag(tag)),
      clear: Effect.uninterruptible(invalidations.clear),
      stats: observation.stats,
      invalidationStats: observation.invalidationStats,
      health: observation.health
    }
    return service
  })
