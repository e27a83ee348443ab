import { describe, expect, it } from "@effect/vitest"
import { type Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { Effect, Layer, Option } from "effect"

/** A lower tier of a Map, with no checks of its own. */
const mapTier = (): Tier.Tier.Service => {
  const map = new Map<string, Entry.Entry>()
  return {
    name: "map",
    get: (key) => Effect.sync(() => Option.fromNullable(map.get(key))),
    getMany: (keys) => Effect.sync(() => keys.map((key) => Option.fromNullable(map.get(key)))),
    set: (key, entry) => Effect.sync(() => void map.set(key, entry)),
    setMany: (entries) =>
      Effect.sync(() => {
        for (const [key, entry] of entries) map.set(key, entry)
      }),
    remove: (keys) =>
      Effect.sync(() => {
        for (const key of keys) map.delete(key)
      }),
    removeMatching: () => Effect.succeed(0),
    clear: Effect.sync(() => map.clear()),
    health: Effect.succeed({ name: "map", healthy: true })
  }
}

/** A tier written as a class: its methods live on the prototype and use `this`. */
class MapTier implements Tier.Tier.Service {
  readonly name = "class-map"
  readonly map = new Map<string, Entry.Entry>()
  get(key: string) {
    return Effect.sync(() => Option.fromNullable(this.map.get(key)))
  }
  getMany(keys: ReadonlyArray<string>) {
    return Effect.sync(() => keys.map((key) => Option.fromNullable(this.map.get(key))))
  }
  set(key: string, entry: Entry.Entry) {
    return Effect.sync(() => void this.map.set(key, entry))
  }
  setMany(entries: ReadonlyArray<readonly [string, Entry.Entry]>) {
    return Effect.sync(() => {
      for (const [key, entry] of entries) this.map.set(key, entry)
    })
  }
  remove(keys: ReadonlyArray<string>) {
    return Effect.sync(() => {
      for (const key of keys) this.map.delete(key)
    })
  }
  removeMatching(_glob: string) {
    return Effect.succeed(0)
  }
  get clear() {
    return Effect.sync(() => this.map.clear())
  }
  get health() {
    return Effect.succeed({ name: this.name, healthy: true })
  }
}

const entry: Entry.Entry = { value: 1, expiresAt: 1e15, staleUntil: 1e15, createdAt: 0, tags: [] }

/** A cache of an L1 of one entry over `l2`. */
const cacheOver = (l2: Tier.Tier.Service) =>
  TieredCache.make().pipe(
    Effect.provide(Layer.merge(MemoryTier.layer({ maxEntries: 1 }), Layer.succeed(Tier.L2, l2)))
  )

/**
 * How many times one `set` on a cache over `l2` reads the field of the value it writes (a getter
 * that counts its reads): each walk of the value reads it once.
 */
const readsOfOneSet = (l2: Tier.Tier.Service) =>
  Effect.gen(function* () {
    const cache = yield* cacheOver(l2)
    let reads = 0
    yield* cache.set("a", {
      get n() {
        reads++
        return 1
      }
    })
    return reads
  })

describe("checks of direct tier calls (Tier.withInputChecks)", () => {
  it.scoped(
    "TieredCache calls the tier inside a checked one: its writes walk each value once, not twice",
    () =>
      Effect.gen(function* () {
        // The cache's own check walks the value once; the checked tier's would walk it again on
        // the L2 write.
        const bare = yield* readsOfOneSet(mapTier())
        const checked = yield* readsOfOneSet(Tier.withInputChecks(mapTier()))
        expect(bare).toBeGreaterThan(0)
        expect(checked).toBe(bare)
      })
  )

  it.scoped("a tier made by spreading a checked one is called as it is (its own methods)", () =>
    Effect.gen(function* () {
      const inner = yield* MemoryTier.make({ maxEntries: 100 })
      const calls: Array<string> = []
      const l2: Tier.Tier.Service = {
        ...inner,
        set: (key, entry) => {
          calls.push(`set ${key}`)
          return inner.set(key, entry)
        },
        get: (key) => {
          calls.push(`get ${key}`)
          return inner.get(key)
        }
      }
      const cache = yield* cacheOver(l2)
      yield* cache.set("a", 1)
      yield* cache.set("b", 2)
      // L1 holds one entry: "a" is read from L2.
      expect(yield* cache.get("a")).toEqual(Option.some(1))
      expect(calls).toEqual(["set a", "set b", "get a"])
    })
  )

  it.effect("called directly, a checked tier refuses a bad argument", () =>
    Effect.gen(function* () {
      const checked = Tier.withInputChecks(mapTier())
      const refused = yield* Effect.flip(checked.get(1 as unknown as string))
      expect([refused._tag, refused.operation]).toEqual(["TierError", "get"])
    })
  )
})

describe("tiers checked by Tier.withInputChecks, and tiers made from them", () => {
  it.effect("a class-based tier, checked, is called with itself as `this`, clear and health kept", () =>
    Effect.gen(function* () {
      const inner = new MapTier()
      const checked = Tier.withInputChecks<Tier.Tier.Service>(inner)
      yield* checked.set("k", entry)
      expect(yield* checked.get("k")).toEqual(Option.some(entry))
      expect(yield* checked.getMany(["k", "x"])).toEqual([Option.some(entry), Option.none()])
      yield* checked.setMany([["j", entry]])
      yield* checked.remove(["k"])
      expect(inner.map.has("k")).toBe(false)
      expect(yield* checked.removeMatching("*")).toBe(0)
      expect((yield* checked.health).healthy).toBe(true)
      yield* checked.clear
      expect(inner.map.size).toBe(0)
      // A bad argument is still refused.
      const refused = yield* Effect.flip(checked.get(1 as unknown as string))
      expect(refused.operation).toBe("get")
    })
  )

  it.scoped("a Proxy of a checked tier, with a method of its own, is called as it is", () =>
    Effect.gen(function* () {
      const inner = yield* MemoryTier.make({ maxEntries: 100 })
      const calls: Array<string> = []
      // The proxy answers the checked tier's hidden field too: it is still not that tier.
      const proxied = new Proxy(inner, {
        get: (target, property, receiver) =>
          property === "get"
            ? (key: string) => {
                calls.push(`get ${key}`)
                return target.get(key)
              }
            : Reflect.get(target, property, receiver)
      })
      const cache = yield* cacheOver(proxied)
      yield* cache.set("a", 1)
      yield* cache.set("b", 2)
      // L1 holds one entry: "a" is read from L2, through the proxy's own get.
      expect(yield* cache.get("a")).toEqual(Option.some(1))
      expect(calls).toEqual(["get a"])
    })
  )

  it.scoped("a tier checked twice is called unchecked by the cache (its writes walk each value once)", () =>
    Effect.gen(function* () {
      const once = yield* readsOfOneSet(Tier.withInputChecks(mapTier()))
      const twice = yield* readsOfOneSet(Tier.withInputChecks(Tier.withInputChecks(mapTier())))
      expect(twice).toBe(once)
    })
  )
})

describe("a tier written as a class", () => {
  it.scoped(
    "works as a cache's L2 and third tier, traced and with recovery on (its methods use `this`)",
    () =>
      Effect.gen(function* () {
        // Before: the cache's wrappers (spans, recovery's gate) spread each tier, which drops a
        // class's prototype methods: every call failed with "tier.set is not a function".
        const l2 = new MapTier()
        const l3 = new MapTier()
        const cache = yield* TieredCache.make().pipe(
          Effect.provide(
            Layer.mergeAll(
              MemoryTier.layer({ maxEntries: 1 }),
              Layer.succeed(Tier.L2, l2),
              Layer.succeed(Tier.Tiers, [l3])
            )
          )
        )
        yield* cache.set("a", 1)
        yield* cache.set("b", 2)
        expect([l2.map.has("a"), l3.map.has("a")]).toEqual([true, true])
        // L1 holds one entry: "a" is read from L2.
        expect(yield* cache.get("a")).toEqual(Option.some(1))
        expect(yield* cache.getMany(["a", "b"])).toEqual([Option.some(1), Option.some(2)])
        yield* cache.invalidate("a")
        expect([l2.map.has("a"), l3.map.has("a")]).toEqual([false, false])
        yield* cache.clear
        expect([l2.map.size, l3.map.size]).toEqual([0, 0])
        const health = yield* cache.health
        expect([health.status, health.tiers.map((t) => t.name)]).toEqual([
          "healthy",
          ["memory", "class-map", "class-map"]
        ])
      })
  )
})
