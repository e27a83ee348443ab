import { KeyValueStore } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Entry } from "@tiercache/core"
import * as KeyValueStoreTier from "@tiercache/core/KeyValueStoreTier"
import { Clock, Effect, Metric, Option } from "effect"

// CacheMetrics.foreignValues counts each read of a tier that meets a value under its prefix that
// is no cache entry: the read `writeIfNewer` makes before it overwrites is one, in
// KeyValueStoreTier as in RedisTier (foreignValues.redis.test.ts checks RedisTier the same way).

describe("KeyValueStoreTier writeIfNewer and foreign values", () => {
  it.scoped("counts each foreign value it meets (and replaces); entries and misses do not", () =>
    Effect.gen(function* () {
      const store = yield* KeyValueStore.KeyValueStore
      const tier = yield* KeyValueStoreTier.make({ name: "kv-cond" })
      const counted = Effect.map(
        Metric.value(Metric.tagged(KeyValueStoreTier.foreignValues, "tier", "kv-cond")),
        (state) => state.count
      )
      const now = yield* Clock.currentTimeMillis
      const entry = (value: unknown, at = now) => Entry.make({ value, now: at, ttlMs: 60_000 })
      yield* store.set("tiercache:text", "plain text")
      yield* store.set("tiercache:json", JSON.stringify({ user: "ada" }))
      yield* tier.set("newer", entry("kept", now + 10_000))
      yield* tier.set("older", entry("old", now - 10_000))
      const applied = yield* tier.writeIfNewer!([
        { key: "text", entry: entry("t"), at: now },
        { key: "json", entry: entry("j"), at: now },
        { key: "newer", entry: entry("lost"), at: now },
        { key: "older", entry: entry("new"), at: now },
        { key: "missing", entry: entry("new"), at: now },
        { key: "gone", entry: undefined, at: now }
      ])
      expect(applied).toEqual([true, true, false, true, true, true])
      expect(yield* counted).toBe(2)
      const read = yield* tier.getMany(["text", "json", "newer", "older"])
      expect(read.map((e) => Option.map(e, (x) => x.value))).toEqual([
        Option.some("t"),
        Option.some("j"),
        Option.some("kept"),
        Option.some("new")
      ])
      expect(yield* counted).toBe(2)
      // A removal over a foreign value counts it too, and removes it.
      yield* store.set("tiercache:text", "plain again")
      expect(yield* tier.writeIfNewer!([{ key: "text", entry: undefined, at: now }])).toEqual([true])
      expect(yield* counted).toBe(3)
      expect(yield* store.get("tiercache:text")).toEqual(Option.none())
    }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )
})
