import { describe, expect, it } from "@effect/vitest"
import { Entry, InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestBus, TestTier } from "@tiercache/testing"
import { Clock, Duration, Effect, Option, Runtime } from "effect"
import * as LateUpdates from "../src/internal/lateUpdates.js"

// Two instances writing one key at once: A's write lands in the shared tier first, B's after it,
// so the tier holds B's value. A's messages reach B only after B's own write has ended: the
// Remove of an earlier write of A's, then the Update of the write that B's overwrote, dated
// (created_ms) no later than B's write. B must not serve A's value from L1 over the tier's
// newer one (seen on Redis with 64 writers of one key on each of two instances: B's L1 kept
// the other instance's older value for good, until its TTL). Checked for the Effect way and
// for the one-step write (setNow and publishNow on one ordered stream).

/** Instance "b": a MemoryTier over `store`, on `hub`; `oneStep`: the ordered shape, writing at once. */
const instanceB = (store: Tier.Tier.Service, hub: TestBus.Hub, oneStep: boolean) =>
  Effect.gen(function* () {
    const bus = TestBus.make(hub)
    const run = Runtime.runCallback(yield* Effect.runtime<never>())
    let removeNowCalls = 0
    const stream = { name: "one stream" }
    const l2: Tier.Tier.Service = oneStep
      ? {
          ...store,
          callTimeout: Duration.millis(100),
          sequence: stream,
          setThen: (key, entry, then) =>
            Effect.flatMap(Effect.either(store.set(key, entry)), (written) =>
              Effect.map(
                then,
                (value) => [written._tag === "Left" ? written.left : undefined, value] as const
              )
            ),
          setNow: (key, entry, done) => {
            run(store.set(key, entry), { onExit: () => done(undefined) })
            return true
          },
          removeThen: (keys, then) =>
            Effect.flatMap(Effect.either(store.remove(keys)), (removed) =>
              Effect.map(
                then,
                (value) => [removed._tag === "Left" ? removed.left : undefined, value] as const
              )
            ),
          removeNow: (keys, done) => {
            removeNowCalls++
            run(store.remove(keys), { onExit: () => done(undefined) })
            return true
          }
        }
      : store
    const busB: InvalidationBus.InvalidationBus.Service = oneStep
      ? {
          ...bus,
          callTimeout: Duration.millis(100),
          sequence: stream,
          publishNow: (message, done) => run(bus.publish(message), { onExit: () => done(undefined) })
        }
      : bus
    let setNowCalls = 0
    const counted: Tier.Tier.Service =
      l2.setNow === undefined
        ? l2
        : {
            ...l2,
            setNow: (key, entry, done) => {
              setNowCalls++
              return l2.setNow!(key, entry, done)
            }
          }
    const cache = yield* TieredCache.make({ instanceId: "b" }).pipe(
      Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
      Effect.provideService(Tier.L2, counted),
      Effect.provideService(InvalidationBus.InvalidationBus, busB)
    )
    return { cache, setNowCalls: () => setNowCalls, removeNowCalls: () => removeNowCalls }
  })

/** A shared tier, a hub, A's bus on it (A itself is only its messages) and instance B. */
const pair = (oneStep: boolean) =>
  Effect.gen(function* () {
    const store = yield* TestTier.make()
    const hub = yield* TestBus.makeHub
    return { store, hub, a: TestBus.make(hub), b: yield* instanceB(store, hub, oneStep) }
  })

const applied = (cache: TieredCache.TieredCache.Service, n: number) =>
  Effect.gen(function* () {
    while ((yield* cache.invalidationStats).messagesApplied < n) yield* Effect.sleep("1 millis")
  })

/**
 * A's messages about "k" arriving at B late: the Remove of an earlier write of A's, then the
 * Update of A's write of `created` (value "a"); waits until B applied both.
 */
const lateFromA = (
  a: InvalidationBus.InvalidationBus.Service,
  b: TieredCache.TieredCache.Service,
  created: number
) =>
  Effect.gen(function* () {
    yield* a.publish({ type: "Remove", key: "k", origin: "a" })
    yield* a.publish({
      type: "Update",
      key: "k",
      value: "a",
      ttl_ms: 60_000,
      created_ms: created,
      origin: "a"
    })
    yield* applied(b, 2)
  })

/** The tier holds B's value, and B answers it, never A's older one. */
const answersB = (store: Tier.Tier.Service, b: TieredCache.TieredCache.Service) =>
  Effect.gen(function* () {
    expect(
      yield* Effect.map(
        store.get("k"),
        Option.map((e) => e.value)
      )
    ).toEqual(Option.some("b"))
    expect(yield* b.get("k")).toEqual(Option.some("b"))
  })

describe("two instances writing one key at once", () => {
  for (const oneStep of [false, true]) {
    it.scopedLive(
      `an Update of the other instance dated no later than this one's write only drops L1 (${oneStep ? "one step" : "the Effect way"})`,
      () =>
        Effect.gen(function* () {
          const { store, a, b } = yield* pair(oneStep)
          const created = yield* Clock.currentTimeMillis
          // B's write, landing last in the shared tier.
          yield* b.cache.update("k", "b")
          expect(b.setNowCalls()).toBe(oneStep ? 1 : 0)
          // A's messages, arriving at B only now.
          yield* lateFromA(a, b.cache, created)
          yield* answersB(store, b.cache)
        })
    )
  }

  it.scopedLive(
    "a computed value stored here counts as this instance's write: an older Update only drops it",
    () =>
      Effect.gen(function* () {
        const { store, a, b } = yield* pair(true)
        const created = yield* Clock.currentTimeMillis
        expect(yield* b.cache.getOrCompute("k", Effect.succeed("b"))).toBe("b")
        while ((yield* b.cache.stats).inFlight > 0) yield* Effect.sleep("1 millis")
        yield* lateFromA(a, b.cache, created)
        yield* answersB(store, b.cache)
      })
  )

  /** A's write of "a" created at `created` landing in the tier. */
  const landingOfA = (store: Tier.Tier.Service, created: number) =>
    store.set("k", Entry.make({ value: "a", now: created, ttlMs: 60_000 }))
  /** A's Update of that write, sent to B. */
  const updateOfA = (a: InvalidationBus.InvalidationBus.Service, created: number) =>
    a.publish({
      type: "Update",
      key: "k",
      value: "a",
      ttl_ms: 60_000,
      created_ms: created,
      origin: "a"
    })
  /** A's write of "a" created at `created`, landed in the tier, and its Update sent to B. */
  const writeOfA = (store: Tier.Tier.Service, a: InvalidationBus.InvalidationBus.Service, created: number) =>
    Effect.zipRight(landingOfA(store, created), updateOfA(a, created))

  it.scopedLive(
    "an Update of the other instance created after this one's write ended is stored once it arrives past the window",
    () =>
      Effect.gen(function* () {
        const { store, a, b } = yield* pair(true)
        yield* b.cache.set("k", "b")
        yield* Effect.sleep(Duration.millis(LateUpdates.WINDOW_MS + 5))
        yield* writeOfA(store, a, yield* Clock.currentTimeMillis)
        yield* applied(b.cache, 1)
        // Stored in L1: answered without the tier (removed from it to tell).
        yield* store.remove(["k"])
        expect(yield* b.cache.get("k")).toEqual(Option.some("a"))
      })
  )

  it.scopedLive(
    "an Update of the other instance arriving within the window of this one's write only drops L1, whatever its date",
    () =>
      Effect.gen(function* () {
        const { store, a, b } = yield* pair(true)
        // A's write, dated a minute ahead (A's clock runs ahead), lands first; B's after it.
        const ahead = (yield* Clock.currentTimeMillis) + 60_000
        yield* landingOfA(store, ahead)
        yield* b.cache.set("k", "b")
        expect(b.setNowCalls()).toBe(1)
        // A's Update reaches B only now, after B's write ended.
        yield* updateOfA(a, ahead)
        yield* applied(b.cache, 1)
        yield* answersB(store, b.cache)
      })
  )

  it.scopedLive(
    "an Update of the other instance created before this one's write but landed after it: its value, not this one's",
    () =>
      Effect.gen(function* () {
        const { store, a, b } = yield* pair(true)
        const created = yield* Clock.currentTimeMillis
        yield* Effect.sleep("5 millis")
        // B's write, created after A's, lands first; A's lands after it.
        yield* b.cache.set("k", "b")
        yield* writeOfA(store, a, created)
        yield* applied(b.cache, 1)
        expect(
          yield* Effect.map(
            store.get("k"),
            Option.map((e) => e.value)
          )
        ).toEqual(Option.some("a"))
        // B's own copy, created later, is dropped: the tier holds what landed last.
        expect(yield* b.cache.get("k")).toEqual(Option.some("a"))
      })
  )

  it.scopedLive(
    "B's invalidate in one step: an Update of A's made before it ended, arriving after it, is not stored",
    () =>
      Effect.gen(function* () {
        const { store, a, b } = yield* pair(true)
        // B has read "k" (it never wrote it: no write of its own refuses A's Update).
        const at = yield* Clock.currentTimeMillis
        yield* store.set("k", Entry.make({ value: "old", now: at, ttlMs: 60_000 }))
        expect(yield* b.cache.get("k")).toEqual(Option.some("old"))
        const created = yield* Clock.currentTimeMillis
        yield* Effect.sleep("2 millis")
        yield* b.cache.invalidate("k")
        expect(b.removeNowCalls()).toBe(1)
        // A's write of "a" landed before B's removal; its Update arrives after it.
        yield* a.publish({
          type: "Update",
          key: "k",
          value: "a",
          ttl_ms: 60_000,
          created_ms: created,
          origin: "a"
        })
        yield* applied(b.cache, 1)
        expect(yield* store.get("k")).toEqual(Option.none())
        expect(yield* b.cache.get("k")).toEqual(Option.none())
      })
  )

  it.scopedLive(
    "two Updates of other instances landing in the other order than they were created: the value that landed last",
    () =>
      Effect.gen(function* () {
        const { store, hub, b } = yield* pair(true)
        const created = yield* Clock.currentTimeMillis
        yield* Effect.sleep("5 millis")
        // C's write, created after A's, lands first and B applies its Update; A's lands after it,
        // and its Update arrives next.
        const later = yield* Clock.currentTimeMillis
        yield* store.set("k", Entry.make({ value: "c", now: later, ttlMs: 60_000 }))
        yield* TestBus.make(hub).publish({
          type: "Update",
          key: "k",
          value: "c",
          ttl_ms: 60_000,
          created_ms: later,
          origin: "c"
        })
        yield* applied(b.cache, 1)
        yield* writeOfA(store, TestBus.make(hub), created)
        yield* applied(b.cache, 2)
        expect(yield* b.cache.get("k")).toEqual(Option.some("a"))
      })
  )
})
