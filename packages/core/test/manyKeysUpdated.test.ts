import { describe, expect, it } from "@effect/vitest"
import { InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestBus, TestTier } from "@tiercache/testing"
import { Effect, Option } from "effect"
import * as LateUpdates from "../src/internal/lateUpdates.js"

// An instance keeps the last removals of at most KEYS keys; past that, a forgotten removal may
// have been of any key, so every undated Update (the Rust crate's: `ttl_secs`, no `created_ms`)
// is refused from then on. Updates applied from other instances count as removals of their key
// (to a third instance's Update), but they remove nothing: once Updates of more than KEYS keys had
// been applied, with no removal at all, the instance refused every undated Update for good (each a
// miss, the value never reaching its L1).

/** A receiver: a MemoryTier over an empty tier (so that a hit is L1's), on `hub`. */
const receiver = (hub: TestBus.Hub) =>
  Effect.gen(function* () {
    const store = yield* TestTier.make()
    const cache = yield* TieredCache.make({ instanceId: "c" }).pipe(
      Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 2 * LateUpdates.KEYS + 10 })),
      Effect.provideService(Tier.L2, store),
      Effect.provideService(InvalidationBus.InvalidationBus, TestBus.make(hub))
    )
    return cache
  })

const applied = (cache: TieredCache.TieredCache.Service, n: number) =>
  Effect.gen(function* () {
    while ((yield* cache.invalidationStats).messagesApplied < n) yield* Effect.yieldNow()
  })

/** An undated Update, as the Rust crate sends it. */
const undated = (key: string, value: string) => JSON.stringify({ type: "Update", key, value, ttl_secs: 600 })

describe("Updates of many keys", () => {
  it.scoped("undated Updates of more keys than removals are kept do not stop undated Updates", () =>
    Effect.gen(function* () {
      const hub = yield* TestBus.makeHub
      const c = yield* receiver(hub)
      const n = LateUpdates.KEYS + 10
      for (let i = 0; i < n; i++) yield* hub.publishRaw(undated(`k${i}`, `v${i}`))
      yield* hub.publishRaw(undated("fresh", "f"))
      yield* applied(c, n + 1)
      // Nothing removed anything: the last Update is in L1 (the tier below is empty).
      expect(yield* c.get("fresh")).toEqual(Option.some("f"))
    })
  )

  it.scoped("dated Updates of more keys than removals are kept do not stop undated Updates", () =>
    Effect.gen(function* () {
      const hub = yield* TestBus.makeHub
      const c = yield* receiver(hub)
      const a = TestBus.make(hub)
      const n = LateUpdates.KEYS + 10
      for (let i = 0; i < n; i++) {
        yield* a.publish({
          type: "Update",
          key: `k${i}`,
          value: `v${i}`,
          ttl_ms: 600_000,
          created_ms: 0,
          origin: "a"
        })
      }
      yield* hub.publishRaw(undated("fresh", "f"))
      yield* applied(c, n + 1)
      expect(yield* c.get("fresh")).toEqual(Option.some("f"))
    })
  )

  it.scoped("a removal forgotten still refuses undated Updates", () =>
    Effect.gen(function* () {
      const hub = yield* TestBus.makeHub
      const c = yield* receiver(hub)
      const n = LateUpdates.KEYS + 10
      for (let i = 0; i < n; i++) yield* hub.publishRaw(JSON.stringify({ type: "Remove", key: `r${i}` }))
      yield* hub.publishRaw(undated("fresh", "f"))
      yield* applied(c, n + 1)
      expect(yield* c.get("fresh")).toEqual(Option.none())
    })
  )

  it.scoped("a removal forgotten after an Update of its key still refuses undated Updates", () =>
    Effect.gen(function* () {
      const hub = yield* TestBus.makeHub
      const c = yield* receiver(hub)
      // The key's removal, then an Update of it: the key's record is the Update's now, but a
      // removal of it was made, and forgetting the key forgets that removal.
      yield* hub.publishRaw(JSON.stringify({ type: "Remove", key: "r" }))
      yield* hub.publishRaw(undated("r", "late"))
      const n = LateUpdates.KEYS + 10
      for (let i = 0; i < n; i++) yield* hub.publishRaw(undated(`k${i}`, `v${i}`))
      yield* hub.publishRaw(undated("fresh", "f"))
      yield* applied(c, n + 3)
      expect(yield* c.get("fresh")).toEqual(Option.none())
    })
  )
})
