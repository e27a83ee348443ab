import { describe, expect, it } from "@effect/vitest"
import { InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestBus, TestTier } from "@tiercache/testing"
import { Effect, Option, TestClock } from "effect"
import * as LateUpdates from "../src/internal/lateUpdates.js"

// Senders that name no `origin` (the Rust crate, an older version): two of them writing one key
// at once, the first write landing first and its Update arriving last. All nameless Updates were
// taken as one sender's, whose order the bus keeps, so the later message was stored over the
// earlier one: this instance served the first write's value, which the shared tier no longer
// held, until its TTL. One nameless sender's Updates of a key, each more than WINDOW_MS after the
// previous one, still reach L1.

const receiver = (store: Tier.Tier.Service, hub: TestBus.Hub) =>
  Effect.gen(function* () {
    return yield* TieredCache.make({ instanceId: "c" }).pipe(
      Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
      Effect.provideService(Tier.L2, store),
      Effect.provideService(InvalidationBus.InvalidationBus, TestBus.make(hub))
    )
  })

const applied = (cache: TieredCache.TieredCache.Service, n: number) =>
  Effect.gen(function* () {
    while ((yield* cache.invalidationStats).messagesApplied < n) yield* Effect.yieldNow()
  })

/** A nameless sender's write of `value` to "k" at `created`, landed in the shared tier. */
const landing = (store: Tier.Tier.Service, value: string, created: number) =>
  store.set("k", {
    value,
    expiresAt: created + 600_000,
    staleUntil: created + 600_000,
    tags: [],
    createdAt: created
  })

/** Its Update, undated (the Rust crate's) or dated without an origin. */
const update = (value: string, created: number | undefined) =>
  JSON.stringify(
    created === undefined
      ? { type: "Update", key: "k", value, ttl_secs: 600 }
      : { type: "Update", key: "k", value, ttl_ms: 600_000, created_ms: created }
  )

describe("two nameless senders writing one key at once", () => {
  for (const dated of [false, true]) {
    it.scoped(
      `the value that landed last, whatever the messages' order (${dated ? "dated" : "undated"})`,
      () =>
        Effect.gen(function* () {
          const store = yield* TestTier.make()
          const hub = yield* TestBus.makeHub
          const c = yield* receiver(store, hub)
          const t = yield* TestClock.currentTimeMillis
          // R1's write, made a moment after R2's (or dated so), lands first; R2's lands last. R2's
          // Update arrives first, R1's after it.
          yield* landing(store, "r1", t + 2)
          yield* landing(store, "r2", t + 1)
          yield* hub.publishRaw(update("r2", dated ? t + 1 : undefined))
          yield* applied(c, 1)
          yield* TestClock.adjust("10 millis")
          yield* hub.publishRaw(update("r1", dated ? t + 2 : undefined))
          yield* applied(c, 2)
          expect(yield* c.get("k")).toEqual(Option.some("r2"))
        })
    )

    it.scoped(
      `one nameless sender's Updates of a key, further apart than the window, reach L1 (${dated ? "dated" : "undated"})`,
      () =>
        Effect.gen(function* () {
          const store = yield* TestTier.make()
          const hub = yield* TestBus.makeHub
          const c = yield* receiver(store, hub)
          for (let i = 0; i < 3; i++) {
            const t = yield* TestClock.currentTimeMillis
            yield* hub.publishRaw(update(`v${i}`, dated ? t : undefined))
            yield* applied(c, i + 1)
            // In L1: the shared tier is empty.
            expect(yield* c.get("k")).toEqual(Option.some(`v${i}`))
            yield* TestClock.adjust(LateUpdates.WINDOW_MS + 1)
          }
        })
    )
  }
})
