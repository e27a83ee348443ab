/**
 * An invalidation that overlaps the background lower-tier write of a computed value:
 * getOrCompute answers once L1 holds the value and writes L2 after; an invalidation covering
 * the key that returns while that write is under way must still leave the value in no tier,
 * and a `set` or `update` of the key must not be overwritten by it.
 */
import { describe, expect, it } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { Context, Duration, Effect, Layer, Option, Random } from "effect"
import { ChaosTier, TestTier } from "../src/index.js"

type Cache = TieredCache.TieredCache.Service

const instance = (options: TieredCache.Options) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 10_000 })
    const chaos = yield* ChaosTier.wrap(yield* TestTier.make({ name: "l2" }))
    const context = yield* Layer.build(
      TieredCache.layer(options).pipe(
        Layer.provide(Layer.merge(Layer.succeed(Tier.L1, l1), Layer.succeed(Tier.L2, chaos)))
      )
    )
    return { cache: Context.get(context, TieredCache.TieredCache), l1, chaos }
  })

/** Each invalidation kind, covering `key` (tagged `t`, under the prefix before its colon). */
const kinds: ReadonlyArray<readonly [string, (cache: Cache, key: string) => Effect.Effect<void, unknown>]> = [
  ["invalidate", (c, k) => c.invalidate(k)],
  ["invalidateMany", (c, k) => c.invalidateMany(["other", k])],
  ["invalidatePattern", (c, k) => c.invalidatePattern(`${k.slice(0, k.indexOf(":") + 1)}*`)],
  ["invalidateTag", (c) => c.invalidateTag("t")],
  ["clear", (c) => c.clear]
]

/** A getOrCompute of `key` whose lower-tier write is slowed by 0-11 ms at random; answers the delay. */
const computeSlowly = (
  { cache, chaos }: { readonly cache: Cache; readonly chaos: ChaosTier.ChaosTier.Service },
  key: string,
  value: string,
  options: TieredCache.ComputeOptions
) =>
  Effect.gen(function* () {
    const delay = yield* Random.nextIntBetween(0, 12)
    yield* chaos.delay("set", Duration.millis(delay))
    yield* cache.getOrCompute(key, Effect.succeed(value), options)
    return delay
  })

describe("an invalidation overtaking a computed value's lower-tier write", () => {
  for (const [name, invalidate] of kinds) {
    it.live(`${name}, 100 times with random delays: once it returned, no tier holds the value`, () =>
      Effect.scoped(
        Effect.gen(function* () {
          const built = yield* instance({ breaker: false })
          const { cache, l1, chaos } = built
          for (let i = 0; i < 100; i++) {
            const key = `${name}${i}:k`
            const delay = yield* computeSlowly(built, key, `v${i}`, { ttl: "1 minute", tags: ["t"] })
            yield* Effect.sleep(Duration.millis(yield* Random.nextIntBetween(0, 4)))
            yield* invalidate(cache, key)
            const check = Effect.gen(function* () {
              if (name !== "invalidateTag") {
                // A tag invalidation leaves entries in L2 by design (their tag time refuses them).
                const inL2 = yield* chaos.wrapped.get(key)
                expect([i, Option.isSome(inL2)]).toEqual([i, false])
              }
              expect([i, Option.isSome(yield* l1.get(key))]).toEqual([i, false])
            })
            yield* check
            // Later too: the write must not land after the invalidation returned.
            yield* Effect.sleep(Duration.millis(delay + 5))
            yield* check
            yield* l1.remove([key])
            expect([i, yield* cache.get(key)]).toEqual([i, Option.none()])
          }
        })
      )
    )
  }

  it.live("the ChaosTier reproduction: set delayed 200 ms, invalidate, 400 ms later L2 holds nothing", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const { cache, chaos } = yield* instance({ breaker: false })
        yield* chaos.delay("set", "200 millis")
        expect(yield* cache.getOrCompute("k", Effect.succeed(1))).toBe(1)
        yield* cache.invalidate("k")
        expect(Option.isNone(yield* chaos.wrapped.get("k"))).toBe(true)
        yield* Effect.sleep("400 millis")
        expect(Option.isNone(yield* chaos.wrapped.get("k"))).toBe(true)
      })
    )
  )

  it.live("a write that lands after the invalidation stopped waiting removes what it wrote", () =>
    Effect.scoped(
      Effect.gen(function* () {
        // No breaker and no tier call timeout: the invalidation waits 1 second, the write takes 1.5.
        const { cache, chaos } = yield* instance({ breaker: false })
        yield* chaos.delay("set", "1500 millis")
        yield* cache.getOrCompute("k", Effect.succeed(1))
        yield* cache.invalidate("k")
        yield* Effect.sleep("1 second")
        expect(Option.isNone(yield* chaos.wrapped.get("k"))).toBe(true)
        expect(yield* cache.get("k")).toEqual(Option.none())
      })
    )
  )

  const hangs: ReadonlyArray<readonly [string, TieredCache.Options]> = [
    ["breaker timeout 200 ms", { breaker: { timeout: "200 millis" } }],
    // No breaker: nothing bounds the tier's call but the invalidation's own wait (a tag
    // invalidation writes its tag time, which would hang too).
    ["no breaker", { breaker: false }]
  ]
  for (const [config, options] of hangs) {
    for (const [name, invalidate] of kinds) {
      if (name === "invalidateTag" && options.breaker === false) continue
      it.live(`${name} stays bounded when the lower-tier write hangs (${config})`, () =>
        Effect.scoped(
          Effect.gen(function* () {
            const { cache, chaos } = yield* instance(options)
            yield* chaos.delay("set", "1 hour")
            yield* cache.getOrCompute(`${name}:k`, Effect.succeed(1), { tags: ["t"] })
            const done = yield* invalidate(cache, `${name}:k`).pipe(
              Effect.either,
              Effect.as(true),
              Effect.timeoutTo({ duration: "20 seconds", onSuccess: (ok) => ok, onTimeout: () => false })
            )
            expect(done).toBe(true)
            yield* chaos.heal
          })
        )
      )
    }
  }

  /** The writes from outside, each of `value` under `key`. */
  const writes: ReadonlyArray<
    readonly [string, (cache: Cache, key: string, value: string) => Effect.Effect<void, unknown>]
  > = [
    ["set", (c, k, v) => c.set(k, v, { ttl: "1 minute" })],
    ["update", (c, k, v) => c.update(k, v, { ttl: "1 minute" })]
  ]
  for (const [name, write] of writes) {
    it.live(
      `${name} after getOrCompute, 100 times with random delays: the written value stays in every tier`,
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            const built = yield* instance({ breaker: false })
            const { cache, l1, chaos } = built
            for (let i = 0; i < 100; i++) {
              const key = `${name}${i}:k`
              // Only the computed value's write is slow: the write from outside would land first.
              const delay = yield* computeSlowly(built, key, `computed${i}`, { ttl: "1 minute" })
              yield* chaos.heal
              yield* Effect.sleep(Duration.millis(yield* Random.nextIntBetween(0, 4)))
              yield* write(cache, key, `written${i}`)
              const check = Effect.gen(function* () {
                const inL2 = yield* chaos.wrapped.get(key)
                expect([i, Option.map(inL2, (e) => e.value)]).toEqual([i, Option.some(`written${i}`)])
                expect([i, yield* cache.get(key)]).toEqual([i, Option.some(`written${i}`)])
              })
              yield* check
              // Later too: the computed value must not land over the written one.
              yield* Effect.sleep(Duration.millis(delay + 5))
              yield* check
              yield* l1.remove([key])
              yield* check
            }
          })
        )
    )

    it.live(`${name} stays bounded when the computed value's write hangs (breaker timeout 200 ms)`, () =>
      Effect.scoped(
        Effect.gen(function* () {
          const { cache, chaos } = yield* instance({ breaker: { timeout: "200 millis" } })
          yield* chaos.delay("set", "1 hour")
          yield* cache.getOrCompute(`${name}:k`, Effect.succeed("computed"))
          yield* chaos.heal
          const done = yield* write(cache, `${name}:k`, "written").pipe(
            Effect.either,
            Effect.as(true),
            Effect.timeoutTo({ duration: "20 seconds", onSuccess: (ok) => ok, onTimeout: () => false })
          )
          expect(done).toBe(true)
          expect(Option.map(yield* chaos.wrapped.get(`${name}:k`), (e) => e.value)).toEqual(
            Option.some("written")
          )
        })
      )
    )
  }
})
