import { describe, expect, it } from "@effect/vitest"
import { InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestBus, TestTier } from "@tiercache/testing"
import { Clock, Duration, Effect, Option, Runtime } from "effect"

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
    return { cache, setNowCalls: () => setNowCalls }
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
          const store = yield* TestTier.make()
          const hub = yield* TestBus.makeHub
          const a = TestBus.make(hub)
          const b = yield* instanceB(store, hub, oneStep)
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
        const store = yield* TestTier.make()
        const hub = yield* TestBus.makeHub
        const a = TestBus.make(hub)
        const b = yield* instanceB(store, hub, true)
        const created = yield* Clock.currentTimeMillis
        expect(yield* b.cache.getOrCompute("k", Effect.succeed("b"))).toBe("b")
        while ((yield* b.cache.stats).inFlight > 0) yield* Effect.sleep("1 millis")
        yield* lateFromA(a, b.cache, created)
        yield* answersB(store, b.cache)
      })
  )

  it.scopedLive("an Update of the other instance created after this one's write ended is stored", () =>
    Effect.gen(function* () {
      const store = yield* TestTier.make()
      const hub = yield* TestBus.makeHub
      const a = TestBus.make(hub)
      const b = yield* instanceB(store, hub, true)
      yield* b.cache.set("k", "b")
      yield* Effect.sleep("5 millis")
      const created = yield* Clock.currentTimeMillis
      yield* store.set("k", {
        value: "a",
        expiresAt: created + 60_000,
        staleUntil: created + 60_000,
        tags: [],
        createdAt: created
      })
      yield* a.publish({
        type: "Update",
        key: "k",
        value: "a",
        ttl_ms: 60_000,
        created_ms: created,
        origin: "a"
      })
      yield* applied(b.cache, 1)
      // Stored in L1: answered without the tier (removed from it to tell).
      yield* store.remove(["k"])
      expect(yield* b.cache.get("k")).toEqual(Option.some("a"))
    })
  )
})
